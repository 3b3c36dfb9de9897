"""LLM client for the world processes (RELED's SED) and the coordinator (eSpark): config, conversations, code
extraction, recording and replay."""

from .client import Completion, LLMAuthError, LLMClient, LLMError, LLMUnavailable
from .config import LLMConfig
from .conversation import Conversation, approx_tokens
from .extract import ContractResult, check_contract, extract_code, feedback_text
from .recorder import Recorder, ReplayBackend, ReplayMiss, request_hash

__all__ = [
    "Completion",
    "ContractResult",
    "Conversation",
    "LLMAuthError",
    "LLMClient",
    "LLMConfig",
    "LLMError",
    "LLMUnavailable",
    "Recorder",
    "ReplayBackend",
    "ReplayMiss",
    "approx_tokens",
    "check_contract",
    "extract_code",
    "feedback_text",
    "request_hash",
]
