"""The dashboard's web server (Starlette on uvicorn): the page and its scripts, shipped in the package (no CDN), a
JSON API, and per open page a server-sent event stream that pushes what the run's files gained each second."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ..run_folder import strict_json
from .data import NotARunError, RunFeed, child_runs, espark_table, folder_kind, read_config, read_summary, sweep_table

log = logging.getLogger("coordinator.dashboard")
STATIC = Path(__file__).parent / "static"
PUSH_EVERY_S = 0.5  # the page hears of a change at most this late (the run writes a frame a second)
CURVES_EVERY_S = 5.0  # the model curves change only with the message sizes: worked out again this often
MAX_FEEDS = 64  # run folders followed at once (a sweep's points opened one after the other)
PAGES = {"dashboard.js": "text/javascript", "dashboard.css": "text/css", "index.html": "text/html"}


def plotly_js() -> Path:
    """plotly.js as the plotly package ships it (the page's charts; served from here, never from a CDN)."""
    import plotly

    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


class Dashboard:
    """The folder shown (a run, an eSpark run or a sweep) and the feeds of the runs opened from it."""

    def __init__(self, root: Path, wait: bool = False):
        self.root = Path(root)
        self.wait = wait  # the folder may not exist yet (netmarl run --dashboard starts the page first)
        self.feeds: dict[Path, RunFeed] = {}
        self.locks: dict[Path, asyncio.Lock] = {}
        self._kind: str | None = None

    def kind(self) -> str:
        """'run', 'espark', 'sweep', or 'starting' while a run started with the page has no config.toml yet
        (fixed once known)."""
        if self._kind is not None:
            return self._kind
        try:
            kind = folder_kind(self.root)
        except NotARunError:
            if self.wait and not (self.root / "config.toml").exists():
                return "starting"
            raise
        if kind == "run" and read_config(self.root).get("algo", {}).get("method") == "espark":
            kind = "espark"  # its espark/ folder comes a moment after its config.toml
        self._kind = kind
        return kind

    def run_dir(self, name: str) -> Path:
        """The run a request names: '' the folder itself, else one of the sweep's points (a bare folder name)."""
        if not name:
            return self.root
        if name not in child_runs(self.root):  # only a name from the listing: never a path from the request
            raise NotARunError(f"{name[:80]!r} is not a run of {self.root.name}")
        return self.root / name

    @contextlib.asynccontextmanager
    async def feed(self, run_dir: Path):
        """The run's feed, brought up to date, held (other requests wait) while the caller reads it."""
        if run_dir not in self.feeds:
            if len(self.feeds) >= MAX_FEEDS:  # the oldest one goes; it is read again if opened again
                oldest = next(iter(self.feeds))
                del self.feeds[oldest], self.locks[oldest]
            self.feeds[run_dir], self.locks[run_dir] = RunFeed(run_dir), asyncio.Lock()
        feed, lock = self.feeds[run_dir], self.locks[run_dir]
        async with lock:
            await asyncio.to_thread(feed.poll)
            yield feed


def _error(text: str, status: int = 404) -> JSONResponse:
    return JSONResponse({"error": text}, status_code=status)


def build_app(dash: Dashboard) -> Starlette:
    """The routes: the page, its scripts, /api/info, /api/stream, /api/frame, /api/sweep, /api/espark."""

    async def page(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name == "plotly.min.js":
            return FileResponse(plotly_js(), media_type="text/javascript")
        if name not in PAGES:
            return _error("no such file")
        return FileResponse(STATIC / name, media_type=PAGES[name])

    async def info(request: Request) -> Response:
        name = request.query_params.get("run", "")
        try:
            kind = dash.kind()
            if kind in ("sweep", "espark", "starting") and not name:  # a page of its own, not a run's
                summary = read_summary(dash.root) or {}
                return JSONResponse({"kind": kind, "name": dash.root.name, "status": summary.get("status")})
            async with dash.feed(dash.run_dir(name)) as feed:
                return _json({"kind": "run", **feed.info(), "status": feed.status()})
        except NotARunError as err:
            return _error(str(err))

    async def frame(request: Request) -> Response:
        try:
            i = int(request.query_params.get("i", "-1"))
            async with dash.feed(dash.run_dir(request.query_params.get("run", ""))) as feed:
                found, count = feed.frame(i), feed.count
        except (NotARunError, ValueError) as err:
            return _error(str(err)[:200], 400)
        return _json({"frame": found, "count": count}) if found else _error("no frame yet")

    def table(kind: str, read):
        """A page's table (read(folder)) if the folder shown is of that kind."""

        async def handler(request: Request) -> Response:
            try:
                if dash.kind() != kind:
                    return _error(f"{dash.root} is not a {kind} folder")
            except NotARunError as err:
                return _error(str(err))
            return _json(await asyncio.to_thread(read, dash.root))

        return handler

    async def stream(request: Request) -> Response:
        name = request.query_params.get("run", "")
        try:
            if dash.kind() != "starting":
                dash.run_dir(name)
        except NotARunError as err:
            return _error(str(err))
        return StreamingResponse(updates(dash, name, request), media_type="text/event-stream")

    return Starlette(
        routes=[
            Route("/", page),
            Route("/static/{name}", static),
            Route("/favicon.ico", lambda request: Response(status_code=204)),
            Route("/api/info", info),
            Route("/api/frame", frame),
            Route("/api/sweep", table("sweep", sweep_table)),
            Route("/api/espark", table("espark", espark_table)),
            Route("/api/stream", stream),
        ]
    )


async def updates(dash: Dashboard, name: str, request: Request):
    """One page's event stream: what changed since its last event (series points, the newest frame,
    events, rounds, status), then every PUSH_EVERY_S again until the page goes. A fault is reported on the
    page and the stream goes on (the run may still be writing what could not be read)."""
    sent = Sent()
    failed = False
    while not await request.is_disconnected():
        try:
            if dash.kind() == "starting":
                out = {"status": {"state": "starting", "text": "the run is starting: waiting for its folder"}}
            else:
                async with dash.feed(dash.run_dir(name)) as feed:
                    out = sent.changes(feed)
                if "map" in out or "curves" in out:  # read once, or every CURVES_EVERY_S: out of the lock
                    out.update({k: await asyncio.to_thread(v) for k, v in out.items() if k in ("map", "curves")})
            failed = False
        except Exception as err:  # a folder half written, a sweep point moved aside, ...
            if not failed:
                log.warning("dashboard: %s: %r", dash.root, err)
            failed = True
            out = {"status": {"state": "error", "text": f"cannot read the run now: {type(err).__name__}: {err}"}}
        yield _event(out)
        await asyncio.sleep(PUSH_EVERY_S)


class Sent:
    """What one page has been sent, so that each event carries only what is new."""

    def __init__(self):
        self.series: dict[tuple[str, str], tuple[int, int]] = {}  # (node, key) -> (times thinned, points sent)
        self.frames = self.events = self.rounds = self.pace = 0
        self.pace_thinned = 0
        self.curves_at, self.map_sent = 0.0, False

    def changes(self, feed: RunFeed) -> dict:
        """The event for this push (the map and the curves as functions, called outside the feed's lock)."""
        out: dict = {"status": feed.status(), "count": feed.count}
        series: dict = {}
        for node, by_key in feed.series.items():
            for key, points in by_key.items():
                thinned = feed.thinned.get((node, key), 0)
                was_thinned, have = self.series.get((node, key), (thinned, 0))
                if was_thinned != thinned:  # halved since: send it whole again
                    have = 0
                if len(points) > have:
                    series.setdefault(node, {})[key] = {"from": have, "points": points[have:]}
                self.series[(node, key)] = (thinned, len(points))
        if series:
            out["series"] = series
        if not self.map_sent and feed.newest is not None:  # the map once the run is under way (info's may predate it)
            out["map"], self.map_sent = feed.map, True
        if feed.count != self.frames:
            self.frames = feed.count
            out["frame"] = feed.newest
        if len(feed.events) > self.events:
            out["events"] = {"from": self.events, "items": feed.events[self.events :]}
            self.events = len(feed.events)
        if len(feed.rounds) > self.rounds:
            out["rounds"] = {"from": self.rounds, "items": feed.rounds[self.rounds :]}
            self.rounds = len(feed.rounds)
        thinned = feed.thinned.get(("world", "pace"), 0)
        if len(feed.pace) != self.pace or thinned != self.pace_thinned:
            start = self.pace if thinned == self.pace_thinned else 0
            out["pace"] = {"from": start, "points": feed.pace[start:]}
            self.pace, self.pace_thinned = len(feed.pace), thinned
        if feed.newest is not None and time.monotonic() - self.curves_at > CURVES_EVERY_S:
            out["curves"], self.curves_at = feed.curves, time.monotonic()
        if feed.summary is not None:
            out["summary"] = feed.summary
        return out


def _json(obj) -> JSONResponse:
    """A JSON answer with NaN and infinities as null (Starlette refuses them; a hostile world may send them)."""
    return JSONResponse(strict_json(obj))


def _event(obj: dict) -> str:
    return f"data: {json.dumps(strict_json(obj), default=str)}\n\n"  # NaN as null: JSON.parse refuses NaN


class AddressError(OSError):
    """The address asked for cannot be served on (in use, not this host's, not a port); the text says why."""


def check_port(host: str, port: int) -> int:
    """Bind the port once to see that it is free (0: a free one is chosen); returns the port to use."""
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: a port in TIME_WAIT is free
            s.bind((host, port))
            return s.getsockname()[1]
    except OSError as err:
        if err.errno == errno.EADDRINUSE:
            raise AddressError(f"port {port} on {host} is in use: choose another with --port") from err
        raise AddressError(f"cannot serve on {host}:{port}: {err.strerror or err}") from err
    except (OverflowError, ValueError) as err:
        raise AddressError(f"cannot serve on {host}:{port}: {err}") from err


def serve(root: Path, host: str, port: int, wait: bool = False, parent: int | None = None, ready=None) -> None:
    """Serve until Ctrl-C (or, parent: until that process is gone: a run's dashboard ends with the run)."""
    import uvicorn

    app = build_app(Dashboard(root, wait))
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=1
    )  # the pages' event streams never end by themselves: a stop waits one second for them, not for ever
    server = uvicorn.Server(config)
    if parent is not None:

        def watch_parent():
            while not server.should_exit:
                if os.getppid() != parent:
                    server.should_exit = True
                time.sleep(1.0)

        threading.Thread(target=watch_parent, daemon=True).start()
    if ready is not None:
        ready()
    server.run()


def start_beside_run(run_dir: Path, host: str, port: int) -> tuple[subprocess.Popen, str]:
    """netmarl run --dashboard: the dashboard as a child process (it waits for the run folder and ends with
    this process); returns it and the page's address. AddressError before anything starts."""
    port = check_port(host, port)
    cmd = [sys.executable, "-m", "coordinator.cli", "dashboard", str(run_dir), "--port", str(port), "--host", host]
    child = subprocess.Popen([*cmd, "--wait", "--parent", str(os.getpid())], stdout=subprocess.DEVNULL)
    return child, f"http://{host}:{port}/"
