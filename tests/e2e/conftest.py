"""A real JupyterLab in headless Chromium, for the end-to-end tests in this directory.

One server per session (``lab``), isolated from the machine's own Jupyter dirs, with a
kernelspec that runs this venv's Python. One browser per session (``browser``); each
test gets fresh pages through ``open_notebook``. Screenshots, the server log and a
screenshot of every failure go to ``$PIPELINE_NB_E2E_ARTIFACTS`` (default
``tests/e2e/artifacts``, ignored by git).

Without Chromium or Playwright the tests skip with an install hint, except when
``CI=true``: there a missing browser is a failure.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterator, NoReturn

import pytest

KERNEL_NAME = "pipeline-nb-e2e"
KERNEL_DISPLAY = "Python 3 (pipeline_nb e2e)"
INSTALL_HINT = ("install a browser and the e2e extras: `sudo apt-get install -y chromium` and "
                "`.venv/bin/pip install -e '.[dev,e2e]'`")
CHROMIUM_CANDIDATES = ("/usr/lib/chromium/chromium", "/usr/bin/chromium", "chromium", "chromium-browser")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(os.environ.get("PIPELINE_NB_E2E_ARTIFACTS") or Path(__file__).parent / "artifacts")
VIEWPORT = {"width": 1200, "height": 900}


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def unavailable(what: str) -> NoReturn:
    """Skip on a developer's machine; fail in CI, where the browser tests must run."""
    message = f"end-to-end tests need {what}: {INSTALL_HINT}"
    if in_ci():
        pytest.fail(f"CI=true and {message}", pytrace=False)
    pytest.skip(message)


def find_chromium() -> str | None:
    """``$PIPELINE_NB_CHROMIUM`` if set (and only it), else Debian's chromium, else one on PATH."""
    explicit = os.environ.get("PIPELINE_NB_CHROMIUM")
    for candidate in [explicit] if explicit else CHROMIUM_CANDIDATES:
        path = candidate if os.path.isabs(candidate) else shutil.which(candidate)
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1))


class Lab:
    """A running JupyterLab server: its URLs, its REST API, its root dir and its settings."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.root = base / "root"
        self.dirs = {name: base / name for name in ("config", "data", "runtime", "settings", "workspaces", "ipython")}
        self.token = secrets.token_hex(16)
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = ARTIFACTS / "jupyterlab.log"

    # -- setup -----------------------------------------------------------------------------
    def prepare(self) -> None:
        for path in (self.root, *self.dirs.values()):
            path.mkdir(parents=True, exist_ok=True)
        write_json(self.dirs["data"] / "kernels" / KERNEL_NAME / "kernel.json", {
            "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": KERNEL_DISPLAY,
            "language": "python",
            "metadata": {"debugger": False},
        })
        self.write_setting("@jupyterlab/apputils-extension", "notification",
                           {"fetchNews": "false", "checkForUpdates": False})
        # Every cell stays in the DOM, so locators never meet a virtualised (unrendered) cell.
        self.write_setting("@jupyterlab/notebook-extension", "tracker", {"windowingMode": "none"})
        self.set_widget_save_state(False)

    def write_setting(self, extension: str, plugin: str, values: dict[str, Any]) -> None:
        """A user setting, read by the server on each request, so it applies to pages opened after."""
        write_json(self.dirs["settings"] / extension / f"{plugin}.jupyterlab-settings", values)

    def set_widget_save_state(self, on: bool) -> None:
        self.write_setting("@jupyter-widgets/jupyterlab-manager", "plugin", {"saveState": on})

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("ANTHROPIC_", "JUPYTER", "IPYTHON"))}  # no real API, no outside config
        env.update({
            "JUPYTER_CONFIG_DIR": str(self.dirs["config"]),
            "JUPYTER_DATA_DIR": str(self.dirs["data"]),
            "JUPYTER_RUNTIME_DIR": str(self.dirs["runtime"]),
            "JUPYTERLAB_SETTINGS_DIR": str(self.dirs["settings"]),
            "JUPYTERLAB_WORKSPACES_DIR": str(self.dirs["workspaces"]),
            "JUPYTER_PLATFORM_DIRS": "1",
            "IPYTHONDIR": str(self.dirs["ipython"]),
            "PYDEVD_DISABLE_FILE_VALIDATION": "1",
        })
        return env

    def start(self, timeout: float = 90) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.log_path.write_bytes(b"")
        last = ""
        for _ in range(3):  # a free port can be taken between probing and binding: try another
            self.port = free_port()
            argv = [sys.executable, "-m", "jupyterlab", "--no-browser",
                    "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
                    f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={self.root}"]
            if hasattr(os, "geteuid") and os.geteuid() == 0:
                argv.append("--allow-root")
            log = self.log_path.open("ab")
            self.proc = subprocess.Popen(argv, env=self.env(), cwd=self.root, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
            log.close()
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    self.api("GET", "/api/status")
                    return
                except (urllib.error.URLError, ConnectionError, OSError) as exc:
                    last = str(exc)
                    time.sleep(0.25)
            self.stop()
        raise RuntimeError(f"JupyterLab did not start ({last}); see {self.log_path}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)  # the server shuts its kernels down
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    # -- use -------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def notebook_url(self, name: str) -> str:
        return f"{self.url}/lab/tree/{name}?reset&token={self.token}"

    def api(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"Authorization": f"token {self.token}",
                                                  "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
        return json.loads(raw) if raw else None

    def write_notebook(self, name: str, cells: list[str]) -> Path:
        nb = {
            "nbformat": 4, "nbformat_minor": 5,
            "metadata": {"kernelspec": {"name": KERNEL_NAME, "display_name": KERNEL_DISPLAY, "language": "python"},
                         "language_info": {"name": "python"}},
            "cells": [{"cell_type": "code", "id": f"c{i}", "metadata": {}, "source": src, "outputs": [],
                       "execution_count": None} for i, src in enumerate(cells)],
        }
        path = self.root / name
        write_json(path, nb)
        return path

    def read_notebook(self, name: str) -> dict[str, Any]:
        return json.loads((self.root / name).read_text())

    def shutdown_kernels(self) -> None:
        """End every session and kernel, and wait until the server lists none."""
        for session in self.api("GET", "/api/sessions"):
            self.api("DELETE", f"/api/sessions/{session['id']}")
        for kernel in self.api("GET", "/api/kernels"):
            self.api("DELETE", f"/api/kernels/{kernel['id']}")
        deadline = time.monotonic() + 20
        while self.api("GET", "/api/kernels"):
            if time.monotonic() > deadline:
                raise AssertionError("kernels still running after shutdown")
            time.sleep(0.2)


NO_KERNELS = "kernels are off for this page"


def refuse_new_kernels(route: Any, request: Any) -> None:
    """A Playwright route: the page may list sessions and kernels but not start one."""
    if request.method == "POST":
        route.fulfill(status=403, content_type="application/json", body=json.dumps({"message": NO_KERNELS}))
    else:
        route.fallback()


class Notebook:
    """One notebook open in a page: run cells, read outputs, use the toolbar."""

    def __init__(self, lab: Lab, page: Any, name: str) -> None:
        self.lab, self.page, self.name = lab, page, name

    def open(self, *, kernel: bool = True) -> "Notebook":
        """Open the notebook; with ``kernel=False`` the page may not start one (it shows "No Kernel")."""
        if not kernel:
            self.page.route("**/api/{sessions,kernels}*", refuse_new_kernels)
        self.page.goto(self.lab.notebook_url(self.name))
        self.page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=60_000)
        if kernel:
            self.wait_idle()
        else:
            self.dismiss_kernel_dialogs()
        return self

    def dismiss_kernel_dialogs(self, timeout: float = 30) -> None:
        """Answer "Error Starting Kernel" (Ok), then "Select Kernel" (No Kernel), whichever shows."""
        dialog = self.page.locator(".jp-Dialog")
        answered: list[str] = []
        quiet_since = None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if dialog.count():
                text = dialog.first.inner_text()
                if NO_KERNELS in text:
                    dialog.first.locator("button.jp-mod-accept").click()
                elif "Select Kernel" in text:
                    dialog.first.get_by_role("button", name="No Kernel").click()
                else:
                    raise AssertionError(f"unexpected dialog: {text!r}")
                answered.append(text.splitlines()[0])
                while dialog.count() and dialog.first.inner_text() == text and time.monotonic() < deadline:
                    time.sleep(0.05)  # the next dialog can replace this one at once
                quiet_since = None
            elif answered and "Select Kernel" in answered[-1]:
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since > 0.5:
                    break
            time.sleep(0.05)
        else:
            raise AssertionError(f"kernel dialogs did not settle; answered {answered}")
        self.page.locator("#jp-main-statusbar").get_by_text("No Kernel").wait_for()

    def wait_idle(self, timeout: float = 60_000) -> None:
        self.page.locator("#jp-main-statusbar").get_by_text(f"{KERNEL_DISPLAY} | Idle").wait_for(timeout=timeout)

    def hide_sidebar(self) -> None:
        """Close the left sidebar (the file browser), so the notebook gets the width."""
        tab = self.page.locator('.jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current')
        if tab.count():
            tab.first.click()
            self.page.locator("#jp-left-stack").wait_for(state="hidden")

    def cell(self, index: int) -> Any:
        return self.page.locator(".jp-Notebook .jp-Cell").nth(index)

    def output(self, index: int) -> Any:
        return self.cell(index).locator(".jp-OutputArea")

    def run(self, index: int) -> None:
        """Run cell ``index`` with Shift+Enter, without waiting for it to finish."""
        self.cell(index).locator(".jp-InputArea-editor").click()
        self.page.keyboard.press("Shift+Enter")

    def wait_done(self, index: int, timeout: float = 60_000) -> None:
        """Wait until cell ``index`` has an execution count (so it is not queued or running)."""
        prompt = self.cell(index).locator(".jp-InputArea-prompt")
        deadline = time.monotonic() + timeout / 1000
        while not re.fullmatch(r"\[\d+\]:", prompt.inner_text().strip()):
            if time.monotonic() > deadline:
                raise AssertionError(f"cell {index} still shows {prompt.inner_text()!r}")
            time.sleep(0.1)

    def run_and_wait(self, index: int, timeout: float = 60_000) -> None:
        self.run(index)
        self.wait_done(index, timeout)

    def printed_json(self, index: int, marker: str) -> Any:
        """The JSON a cell printed after ``marker`` (build the marker in the cell so the editor never shows it)."""
        text = self.output(index).inner_text()
        found = re.search(re.escape(marker) + r"\s*(.*)", text)
        assert found, f"no {marker!r} in the output of cell {index}: {text[:500]!r}"
        return json.loads(found.group(1))

    def save(self) -> None:
        self.page.locator(".jp-Notebook").click(position={"x": 5, "y": 5})
        self.page.keyboard.press("Control+s")

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / name
        self.page.screenshot(path=str(path))
        return path


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where screenshots go: ``$PIPELINE_NB_E2E_ARTIFACTS``, else ``tests/e2e/artifacts``."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def chromium() -> str:
    path = find_chromium()
    if path is None:
        where = os.environ.get("PIPELINE_NB_CHROMIUM") or "/usr/lib/chromium/chromium or on PATH"
        unavailable(f"Chromium (not found: {where})")
    return path


@pytest.fixture(scope="session")
def browser(chromium: str) -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("Playwright (the Python package)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def lab(browser: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    try:
        import jupyterlab  # noqa: F401
    except ImportError:
        unavailable("JupyterLab")
    server = Lab(tmp_path_factory.mktemp("jupyterlab"))
    server.prepare()
    server.start()
    yield server
    server.stop()


FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report = yield
    if report.when == "call":
        item.stash[FAILED] = report.failed
    return report


@pytest.fixture
def open_notebook(lab: Lab, browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """``open_notebook(name, cells=None, kernel=True)``: a fresh page (new browser context) on it.

    With ``cells``, the notebook file is written first. A failing test leaves a screenshot of each page.
    """
    contexts: list[Any] = []

    def opener(name: str, cells: list[str] | None = None, *, kernel: bool = True) -> Notebook:
        if cells is not None:
            lab.write_notebook(name, cells)
        context = browser.new_context(viewport=VIEWPORT)
        context.set_default_timeout(30_000)
        contexts.append(context)
        return Notebook(lab, context.new_page(), name).open(kernel=kernel)

    yield opener
    failed = request.node.stash.get(FAILED, False)
    for i, context in enumerate(contexts):
        if failed:
            for page in context.pages:
                ARTIFACTS.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(ARTIFACTS / f"FAILED-{request.node.name}-{i}.png"))
        context.close()
    lab.shutdown_kernels()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the browser tests last: their Playwright loop and server then never overlap other tests."""
    here = Path(__file__).parent
    items.sort(key=lambda item: here in Path(item.path).parents)
