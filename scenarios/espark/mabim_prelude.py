"""The MABIM exploration functions' prelude: placed BEFORE the candidate in the sandbox (eSpark paper, App. I), it
gives the typed inputs the signature names (AgentStates, SupplyChain) over the plain data the world sends, and the
adapter the entry point calls. This file's text is the prelude (scenarios/espark/candidates.py reads it); a
candidate's traceback line numbers include its lines."""

import numpy as np


class AgentStates:
    """agent_states[warehouse, item, date, sku] over states[item] shaped (W, T, N); day T-1 is today."""

    def __init__(self, d):
        self._w, self._s, self._st = list(d["warehouses"]), list(d["skus"]), d["states"]
        self.current_step, self.durations, self.lookback = d["current_step"], d["durations"], d["lookback"]

    def __len__(self):
        return len(self._s)

    def __getitem__(self, key):
        wh, item, date, sku = key
        a = np.asarray(self._st[item])
        a = a if wh == "all_warehouses" else a[self._w.index(wh)]
        t = a.shape[-2]
        sel = {
            "today": t - 1,
            "yesterday": t - 2,
            "history": slice(None),
            "all_dates": slice(None),
            "lookback": slice(max(t - 1 - self.lookback, 0), t - 1),
            "lookback_with_current": slice(max(t - self.lookback, 0), t),
        }
        a = a[..., sel[date] if isinstance(date, str) else int(date), :]
        return a if sku == "all_skus" else a[..., self._s.index(sku)]


class SupplyChain:
    """supply_chain[warehouse, key]; warehouses listed from the customer-facing one (head) to the top (tail)."""

    def __init__(self, d):
        self._d = d

    def get_warehouse_list(self):
        return list(self._d["warehouses"])

    def get_head(self):
        return self._d["warehouses"][0]

    def get_tail(self):
        return self._d["warehouses"][-1]

    def __getitem__(self, key):
        wh, item = key
        return self._d[item][wh]


def _espark_wrap(args):
    return AgentStates(args[0]), SupplyChain(args[1]), list(args[2])
