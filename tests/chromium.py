"""Drive a headless Chromium from the standard library, for the report's browser test.

Chromium started with ``--remote-debugging-pipe`` speaks the DevTools protocol over two
pipes: it reads commands from its file descriptor 3 and writes replies and events to 4,
each a JSON object ended by a NUL byte. That needs no WebSocket client and no extra Python
package, and it reads the page as the browser sees it: console messages and uncaught
exceptions as events, every network request the page makes, and each image's decoded
size through ``Runtime.evaluate``. The page itself is loaded unchanged.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["FLAGS", "Browser", "PageCheck", "check_page", "find_chromium", "screenshot"]

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
"""The flags every launch uses (a fresh ``--user-data-dir`` is added per launch)."""

# Each image's natural size, and whether HTMLImageElement.decode() succeeded.
_IMAGES_JS = """
Promise.all([...document.images].map(img => img.decode().then(() => true, () => false)
  .then(decoded => ({src: img.currentSrc.slice(0, 40), width: img.naturalWidth,
                     height: img.naturalHeight, decoded}))))
"""


def find_chromium() -> str | None:
    """The Chromium executable: ``/usr/bin/chromium``, else ``chromium`` (or
    ``chromium-browser``) on ``PATH``; None when there is none."""
    if os.access("/usr/bin/chromium", os.X_OK):
        return "/usr/bin/chromium"
    return shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass(frozen=True)
class PageCheck:
    """What loading a page showed: console errors (``console.error``, uncaught exceptions,
    the browser's own error log such as failed loads or refused resources), each image's
    state, and every URL requested besides the page itself and ``data:`` URIs."""

    console_errors: list[str] = field(default_factory=list)
    images: list[dict[str, Any]] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    @property
    def broken_images(self) -> list[dict[str, Any]]:
        """Images that did not decode (natural width 0, or ``decode()`` rejected)."""
        return [i for i in self.images if not (i["width"] > 0 and i["decoded"])]


class Browser:
    """One headless Chromium with a fresh profile, driven over the DevTools pipe.

    Use as a context manager; `call` sends a command and returns its result, keeping the
    events that arrive meanwhile in `events`.
    """

    def __init__(self, executable: str | None = None, timeout: float = 60.0) -> None:
        exe = executable or find_chromium()
        if exe is None:
            raise FileNotFoundError("no chromium found (/usr/bin/chromium or on PATH)")
        self.timeout = timeout
        self.events: list[dict[str, Any]] = []
        self._profile = tempfile.mkdtemp(prefix="disciplined-chromium-")
        self._log = open(os.path.join(self._profile, "stderr.log"), "wb")  # noqa: SIM115
        self._next_id = 0
        self._buffer = b""
        cmd_r, self._cmd_w = os.pipe()
        self._resp_r, resp_w = os.pipe()
        # Move the child's ends above 4 so that dup2 into 3 and 4 cannot clobber either.
        child_r = fcntl.fcntl(cmd_r, fcntl.F_DUPFD_CLOEXEC, 10)
        child_w = fcntl.fcntl(resp_w, fcntl.F_DUPFD_CLOEXEC, 10)
        os.close(cmd_r)
        os.close(resp_w)

        def wire_pipes() -> None:  # in the child, before exec: dup2 clears close-on-exec
            os.dup2(child_r, 3)
            os.dup2(child_w, 4)

        args = [exe, *FLAGS, f"--user-data-dir={self._profile}", "--remote-debugging-pipe"]
        try:
            self._proc = subprocess.Popen(
                [*args, "about:blank"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=self._log,
                preexec_fn=wire_pipes,  # safe: no threads run here
                close_fds=False,  # our other descriptors are all close-on-exec (PEP 446)
            )
        finally:
            os.close(child_r)
            os.close(child_w)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Ask the browser to quit, wait for it (kill it after 10 s), remove the profile."""
        with contextlib.suppress(OSError, RuntimeError, TimeoutError):
            self._send("Browser.close")
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        for fd in (self._cmd_w, self._resp_r):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._log.close()
        shutil.rmtree(self._profile, ignore_errors=True)

    def stderr_tail(self, chars: int = 2000) -> str:
        """The end of what the browser wrote on stderr (for error messages)."""
        self._log.flush()
        text = Path(self._profile, "stderr.log").read_text(errors="replace")
        return text[-chars:]

    def _send(self, method: str, params: dict | None = None, session: str | None = None) -> int:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        data = json.dumps(message).encode() + b"\0"
        while data:
            data = data[os.write(self._cmd_w, data) :]
        return self._next_id

    def _receive(self, deadline: float) -> dict[str, Any] | None:
        """The next message, or None once ``deadline`` (a `time.monotonic` value) passes."""
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([self._resp_r], [], [], left)
            if not ready:
                return None
            chunk = os.read(self._resp_r, 1 << 20)
            if not chunk:
                raise RuntimeError(f"chromium closed the pipe: {self.stderr_tail()}")
            self._buffer += chunk
        raw, _, self._buffer = self._buffer.partition(b"\0")
        return json.loads(raw)

    def call(
        self, method: str, params: dict | None = None, session: str | None = None
    ) -> dict[str, Any]:
        """Send a command and return its result; raise `RuntimeError` on a protocol error
        and `TimeoutError` when no reply comes within the browser's timeout."""
        wanted = self._send(method, params, session)
        deadline = time.monotonic() + self.timeout
        while (message := self._receive(deadline)) is not None:
            if message.get("id") != wanted:
                self.events.append(message)
            elif "error" in message:
                raise RuntimeError(f"{method}: {message['error']}")
            else:
                return message.get("result", {})
        raise TimeoutError(f"{method}: no reply in {self.timeout:g} s")

    def wait_for(self, method: str, session: str | None = None) -> dict[str, Any]:
        """Wait for the event ``method`` (already received or still to come) and return it."""
        deadline = time.monotonic() + self.timeout
        while True:
            for event in self.events:
                if event.get("method") == method and event.get("sessionId") == session:
                    return event
            message = self._receive(deadline)
            if message is None:
                raise TimeoutError(f"no {method} event in {self.timeout:g} s")
            self.events.append(message)

    def drain(self, seconds: float) -> None:
        """Keep the events that arrive in the next ``seconds``."""
        deadline = time.monotonic() + seconds
        while (message := self._receive(deadline)) is not None:
            self.events.append(message)

    def open_page(self, url: str, width: int = 1200, height: int = 1600) -> str:
        """Open a new tab at a ``width`` x ``height`` viewport, with console, log, network
        and page events on, load ``url`` and wait for its load event; return the session."""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable", session=session)
        self.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
            session=session,
        )
        nav = self.call("Page.navigate", {"url": url}, session=session)
        if nav.get("errorText"):
            raise RuntimeError(f"cannot load {url}: {nav['errorText']}")
        self.wait_for("Page.loadEventFired", session)
        return session

    def evaluate(self, expression: str, session: str) -> Any:
        """The value of a JavaScript expression in the page (promises are awaited)."""
        result = self.call(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
            session=session,
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"evaluation failed: {result['exceptionDetails']}")
        return result["result"].get("value")


def _console_errors(events: list[dict[str, Any]], session: str) -> list[str]:
    errors = []
    for event in events:
        if event.get("sessionId") != session:
            continue
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            args = params.get("args", [])
            errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in args))
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            errors.append(details.get("exception", {}).get("description") or details.get("text"))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            errors.append(f"{entry.get('source')}: {entry.get('text')} {entry.get('url', '')}")
    return errors


def check_page(path: str | Path, *, executable: str | None = None) -> PageCheck:
    """Load the local HTML file ``path`` headless and report console errors, the state of
    every image, and the URLs it requested besides itself and ``data:`` URIs."""
    url = Path(path).resolve().as_uri()
    with Browser(executable) as browser:
        session = browser.open_page(url)
        images = browser.evaluate(_IMAGES_JS, session)
        browser.drain(0.5)  # late console messages, if any
        requests = [
            e["params"]["request"]["url"]
            for e in browser.events
            if e.get("method") == "Network.requestWillBeSent" and e.get("sessionId") == session
        ]
        return PageCheck(
            console_errors=_console_errors(browser.events, session),
            images=images,
            requests=[u for u in requests if u != url and not u.startswith("data:")],
        )


def screenshot(
    path: str | Path,
    png: str | Path,
    *,
    width: int = 1200,
    height: int = 1600,
    full_page: bool = False,
    executable: str | None = None,
) -> Path:
    """Save a PNG of the local HTML file ``path`` as seen in a ``width`` x ``height``
    window: the first screen, or the whole page with ``full_page``. Returns ``png``."""
    with Browser(executable) as browser:
        session = browser.open_page(Path(path).resolve().as_uri(), width, height)
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            size = browser.call("Page.getLayoutMetrics", session=session)["cssContentSize"]
            params["captureBeyondViewport"] = True
            params["clip"] = {"x": 0, "y": 0, "width": width, "height": size["height"], "scale": 1}
        data = browser.call("Page.captureScreenshot", params, session=session)["data"]
    png = Path(png)
    png.parent.mkdir(parents=True, exist_ok=True)
    png.write_bytes(base64.b64decode(data))
    return png
