#!/usr/bin/python3
"""The tray app for real, on a private desktop: run by `cargo xtask test` as

    xvfb-run -a dbus-run-session -- /usr/bin/python3 tests/desktop/desktop_test.py

(Debian's python3 for python3-gi). Against `target/debug/clawfleet-tray`
with a fake Ollama that speaks Ollama's documented JSON:

- the tray: a minimal org.kde.StatusNotifierWatcher on the session bus sees
  the icon register; its menu (com.canonical.dbusmenu) lists the machine and
  the heal actions; its icon changes when Ollama stops; clicking "Pause
  self-healing", a heal item, "Open dashboard" and "Quit" over D-Bus does
  what they say; a second launch does not start a second instance;
- notifications: a heal fired from the menu reaches a real notification
  server (dunst), observed with dbus-monitor;
- the popover: driven with tauri-driver + WebKitWebDriver, the dashboard
  renders in the app's own webview and a heal button round-trips through
  the app's `heal` command (no token: the event log says "tray").

Prints TAP-style totals (`# pass N`, `# fail N`) for xtask.
"""

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import gi

gi.require_version("Gio", "2.0")
from gi.repository import Gio, GLib  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("CLAWFLEET_TRAY_BIN", os.path.join(ROOT, "target", "debug", "clawfleet-tray"))
SHOTS = os.path.join(ROOT, "target", "screenshots")

# ---- a fake Ollama (docs/api.md shapes) -------------------------------------

MODEL = {
    "name": "gpt-oss:20b", "model": "gpt-oss:20b", "modified_at": "2026-11-01T10:00:00Z",
    "size": 13780173724, "digest": "sha256:0",
    "details": {"parent_model": "", "format": "gguf", "family": "gptoss", "families": ["gptoss"],
                "parameter_size": "20.9B", "quantization_level": "MXFP4"},
}


class FakeOllama:
    def __init__(self):
        self.loaded = [dict(MODEL, expires_at="2099-01-01T00:00:00Z", size_vram=13900000000)]
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def reply(self, body, status=200):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                answers = {"/api/version": {"version": "0.12.6"}, "/api/tags": {"models": [MODEL]},
                           "/api/ps": {"models": fake.loaded}}
                if self.path in answers:
                    self.reply(answers[self.path])
                else:
                    self.reply({"error": "not found"}, 404)

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                if self.path == "/api/generate" and body.get("keep_alive") == 0:
                    fake.loaded = [m for m in fake.loaded if m["name"] != body.get("model")]
                    self.reply({"model": body.get("model"), "created_at": "2026-11-30T00:00:00Z",
                                "response": "", "done": True, "done_reason": "unload"})
                else:
                    self.reply({"error": "not found"}, 404)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


# ---- a minimal StatusNotifierWatcher ------------------------------------------

WATCHER_XML = """<node><interface name="org.kde.StatusNotifierWatcher">
  <method name="RegisterStatusNotifierItem"><arg name="service" type="s" direction="in"/></method>
  <method name="RegisterStatusNotifierHost"><arg name="service" type="s" direction="in"/></method>
  <property name="RegisteredStatusNotifierItems" type="as" access="read"/>
  <property name="IsStatusNotifierHostRegistered" type="b" access="read"/>
  <property name="ProtocolVersion" type="i" access="read"/>
  <signal name="StatusNotifierItemRegistered"><arg type="s"/></signal>
  <signal name="StatusNotifierItemUnregistered"><arg type="s"/></signal>
  <signal name="StatusNotifierHostRegistered"/>
</interface></node>"""


class Watcher:
    """Owns org.kde.StatusNotifierWatcher and records who registers."""

    def __init__(self):
        self.items = []  # (bus name, object path)
        self.bus = Gio.bus_get_sync(Gio.BusType.SESSION, None)
        self.loop = GLib.MainLoop()
        node = Gio.DBusNodeInfo.new_for_xml(WATCHER_XML)
        self.bus.register_object("/StatusNotifierWatcher", node.interfaces[0], self.call, self.get, None)
        Gio.bus_own_name_on_connection(self.bus, "org.kde.StatusNotifierWatcher",
                                       Gio.BusNameOwnerFlags.NONE, None, None)
        threading.Thread(target=self.loop.run, daemon=True).start()

    def call(self, conn, sender, path, iface, method, params, invocation):
        if method == "RegisterStatusNotifierItem":
            service = params.unpack()[0]
            item = (sender, service) if service.startswith("/") else (service, "/StatusNotifierItem")
            self.items.append(item)
            conn.emit_signal(None, "/StatusNotifierWatcher", "org.kde.StatusNotifierWatcher",
                             "StatusNotifierItemRegistered", GLib.Variant("(s)", (item[0] + item[1],)))
        invocation.return_value(None)

    def get(self, conn, sender, path, iface, prop):
        if prop == "RegisteredStatusNotifierItems":
            return GLib.Variant("as", [a + b for a, b in self.items])
        if prop == "IsStatusNotifierHostRegistered":
            return GLib.Variant("b", True)
        return GLib.Variant("i", 0)

    def prop(self, item, name):
        res = self.bus.call_sync(item[0], item[1], "org.freedesktop.DBus.Properties", "Get",
                                 GLib.Variant("(ss)", ("org.kde.StatusNotifierItem", name)),
                                 GLib.VariantType("(v)"), Gio.DBusCallFlags.NONE, 5000, None)
        return res.unpack()[0]

    def layout(self, item):
        """The menu as a list of (id, label, enabled, toggle-state, children)."""
        menu = self.prop(item, "Menu")
        res = self.bus.call_sync(item[0], menu, "com.canonical.dbusmenu", "GetLayout",
                                 GLib.Variant("(iias)", (0, -1, [])),
                                 GLib.VariantType("(u(ia{sv}av))"), Gio.DBusCallFlags.NONE, 5000, None)
        _, root = res.unpack()

        def walk(node):
            ident, props, children = node
            return {"id": ident, "label": props.get("label", ""), "enabled": props.get("enabled", True),
                    "toggle": props.get("toggle-state"), "children": [walk(c) for c in children]}

        return walk(root)

    def click(self, item, ident):
        menu = self.prop(item, "Menu")
        self.bus.call_sync(item[0], menu, "com.canonical.dbusmenu", "Event",
                           GLib.Variant("(isvu)", (ident, "clicked", GLib.Variant("i", 0), 0)),
                           None, Gio.DBusCallFlags.NONE, 5000, None)


def flatten(node):
    yield node
    for c in node["children"]:
        yield from flatten(c)


def find(layout, label_prefix):
    for n in flatten(layout):
        if n["label"].replace("__", "_").startswith(label_prefix):
            return n
    return None


def wait_for(what, check, timeout=30.0, every=0.25):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except Exception as e:  # noqa: BLE001 - reported on timeout
            last = e
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def http_json(url, data=None, headers=None):
    req = urllib.request.Request(url, data=data, headers=headers or {})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


# ---- the app ------------------------------------------------------------------


class App:
    """clawfleet-tray with its own config and data folder."""

    def __init__(self, tmp, ollama_port, extra_env=None):
        self.tmp = tmp
        self.config = os.path.join(tmp, "config.toml")
        with open(self.config, "w") as f:
            f.write(f"""this_machine = "m"
data_dir = {json.dumps(os.path.join(tmp, "data"))}
[api]
listen = "127.0.0.1:0"
[proxy]
listen = "127.0.0.1:0"
[probes]
system_interval_secs = 1
ollama_interval_secs = 1
[clawdbot]
config_path = {json.dumps(os.path.join(tmp, "none.json"))}
[costs]
read_transcripts = false
[heal]
mode = "suggest"
verify_secs = 15
[heal.commands]
"restart-ollama" = [["true"]]
[[machines]]
id = "m"
name = "Test machine"
ollama_url = "http://127.0.0.1:{ollama_port}"
models = [ {{ name = "gpt-oss:20b", purpose = "Primary model" }} ]
""")
        self.env = dict(os.environ, CLAWFLEET_LOG="info", **(extra_env or {}))
        self.proc = None
        self.api = None
        self.log = os.path.join(tmp, "tray.log")

    def start(self):
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen([BIN, "--config", self.config], env=self.env, stdout=subprocess.PIPE,
                                         stderr=log, text=True)
        line = self.proc.stdout.readline().strip()
        assert line.startswith("clawfleet-tray: fleet API on "), (line, read(self.log)[-2000:])
        self.api = line.split(" on ", 1)[1]
        return self

    def heal_status(self):
        return http_json(self.api + "/fleet/v1/heal")

    def events(self):
        return http_json(self.api + "/fleet/v1/events?limit=200")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc and self.proc.stdout:
            self.proc.stdout.close()


def read(path):
    with open(path) as f:
        return f.read()


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def parent(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def descendants(pid):
    """Every process under pid (not pid itself)."""
    kids = {}
    for p in os.listdir("/proc"):
        if p.isdigit():
            kids.setdefault(parent(int(p)), []).append(int(p))
    out, todo = [], list(kids.get(pid, []))
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def windows():
    out = subprocess.run(["xwininfo", "-root", "-tree"], capture_output=True, text=True).stdout
    return out


class Tray(unittest.TestCase):
    def test_the_tray_registers_shows_the_fleet_and_its_items_work(self):
        tmp = tempfile.mkdtemp(prefix="clawfleet-tray-")
        ollama = FakeOllama()
        watcher = Watcher()
        notify_log = os.path.join(tmp, "notify.log")
        dunst = subprocess.Popen(["dunst"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with open(notify_log, "w") as out:
            monitor = subprocess.Popen(["dbus-monitor", "--session",
                                        "type='method_call',interface='org.freedesktop.Notifications',"
                                        "member='Notify'"], stdout=out, stderr=subprocess.DEVNULL)
        app = App(tmp, ollama.port).start()
        try:
            item = wait_for("the tray icon to register", lambda: watcher.items and watcher.items[0])

            # The menu: the machine's line, the heal actions that apply now.
            def machine_line():
                node = find(watcher.layout(item), "Test machine — Ollama ok")
                return node and "1 model loaded" in node["label"] and node
            line = wait_for("the machine's line in the menu", machine_line)
            self.assertFalse(line["enabled"], "a machine line is information, not a button")
            layout = watcher.layout(item)
            heal = find(layout, "Heal")
            self.assertIsNotNone(heal)
            labels = [c["label"] for c in heal["children"]]
            self.assertIn("Restart Ollama", labels)
            self.assertIn("Unload gpt-oss:20b", labels)
            for label in ["Open dashboard", "Pause self-healing", "Start at login", "Quit ClawFleet"]:
                self.assertIsNotNone(find(layout, label), label)

            # Pause, from the menu.
            watcher.click(item, wait_for("the pause item", lambda: find(watcher.layout(item), "Pause self-healing"))["id"])
            wait_for("healing paused", lambda: app.heal_status()["paused"])
            wait_for("the pause checked in the menu",
                     lambda: (find(watcher.layout(item), "Pause self-healing") or {}).get("toggle") == 1)

            # A heal item: the action runs, and a notification says so.
            # (The menu is refilled when the state changes: look it up afresh.)
            def unload_item():
                heal = find(watcher.layout(item), "Heal")
                return heal and next((c for c in heal["children"] if c["label"] == "Unload gpt-oss:20b"), None)
            watcher.click(item, wait_for("the unload item", unload_item)["id"])
            outcome = wait_for("the unload's outcome", lambda: next(
                (e for e in app.events() if e["kind"] == "outcome" and e["action"] == "unload-model"), None))
            self.assertTrue(outcome["detail"]["success"], outcome)
            self.assertEqual(outcome["requested_by"], "tray menu")
            wait_for("the notification on the bus",
                     lambda: "ClawFleet healed" in read(notify_log)
                     and "Unloaded gpt-oss:20b" in read(notify_log), timeout=20)

            # The icon follows the state: Ollama stops, the card goes red and so does the icon.
            before = watcher.prop(item, "IconName")
            ollama.stop()
            wait_for("the icon to change", lambda: watcher.prop(item, "IconName") != before, timeout=20)
            wait_for("the menu to say Ollama is down",
                     lambda: find(watcher.layout(item), "Test machine — Ollama down"))

            # Open dashboard: a window appears.
            watcher.click(item, wait_for("the open item", lambda: find(watcher.layout(item), "Open dashboard"))["id"])
            wait_for("the dashboard window", lambda: '"ClawFleet"' in windows(), timeout=20)
            os.makedirs(SHOTS, exist_ok=True)
            subprocess.run(["import", "-window", "root", os.path.join(SHOTS, "tray-popover-xvfb.png")])

            # The dashboard lives in a helper process (the same binary,
            # --popover), with the web process under it; the app itself
            # never holds a webview.
            helpers = [p for p in descendants(app.proc.pid) if "--popover" in cmdline(p)]
            self.assertEqual(len(helpers), 1, [cmdline(p) for p in descendants(app.proc.pid)])
            self.assertEqual(parent(helpers[0]), app.proc.pid)

            def web_processes():
                return [p for p in descendants(app.proc.pid) if "WebKitWebProcess" in cmdline(p)]
            wait_for("an open dashboard's web process", web_processes)
            self.assertTrue(all(parent(p) != app.proc.pid for p in web_processes()),
                            "the web process belongs to the helper, not the app")
            watcher.click(item, wait_for("the close item", lambda: find(watcher.layout(item), "Close dashboard"))["id"])
            wait_for("the window to close", lambda: '"ClawFleet"' not in windows(), timeout=20)
            wait_for("its web process to go", lambda: not web_processes(), timeout=20)
            wait_for("the helper to go", lambda: not [p for p in descendants(app.proc.pid)
                                                      if "--popover" in cmdline(p)], timeout=20)
            wait_for("the menu to offer it again", lambda: find(watcher.layout(item), "Open dashboard"))

            # A second launch hands over to the first (which shows its
            # dashboard) and exits.
            second = subprocess.run([BIN, "--config", app.config], env=app.env, capture_output=True,
                                    text=True, timeout=30)
            self.assertEqual(second.returncode, 0, second.stderr[-2000:])
            self.assertNotIn("fleet API on", second.stdout, "the second did not start an engine")
            wait_for("the first to hear of it",
                     lambda: "a second launch" in read(app.log), timeout=10)
            self.assertIsNone(app.proc.poll(), "the first is still running")
            wait_for("the first's dashboard", lambda: '"ClawFleet"' in windows(), timeout=20)

            # Quit.
            watcher.click(item, wait_for("the quit item", lambda: find(watcher.layout(item), "Quit ClawFleet"))["id"])
            self.assertEqual(app.proc.wait(20), 0)
        finally:
            app.stop()
            for p in (monitor, dunst):
                p.terminate()
                p.wait(10)
            try:
                ollama.stop()
            except Exception:  # noqa: BLE001 - already stopped
                pass
            shutil.rmtree(tmp, ignore_errors=True)


class NoTrayHost(unittest.TestCase):
    def test_without_a_tray_host_the_dashboard_opens_and_stays(self):
        tmp = tempfile.mkdtemp(prefix="clawfleet-notray-")
        ollama = FakeOllama()
        app = App(tmp, ollama.port)
        # A session bus of its own, with no StatusNotifierWatcher on it.
        with open(app.log, "w") as log:
            proc = subprocess.Popen(["dbus-run-session", "--", BIN, "--config", app.config], env=app.env,
                                    stdout=subprocess.DEVNULL, stderr=log)
        try:
            wait_for("the warning", lambda: "no StatusNotifier tray host" in read(app.log), timeout=30)
            self.assertIn("the dashboard opens and stays open", read(app.log))
            wait_for("the dashboard window", lambda: '"ClawFleet"' in windows(), timeout=30)
            helper = wait_for("the helper", lambda: [p for p in descendants(proc.pid)
                                                     if "--popover" in cmdline(p)])
            self.assertIn("--keep-open", cmdline(helper[0]), "no tray: nothing else would bring it back")
            self.assertIsNone(proc.poll(), "the app keeps running")
        finally:
            subprocess.run(["pkill", "-f", app.config], check=False)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
            ollama.stop()
            if sys.exc_info()[0] is not None:
                print("--- app log ---\n" + read(app.log)[-4000:], file=sys.stderr)
            shutil.rmtree(tmp, ignore_errors=True)
        wait_for("the window to go with the app", lambda: '"ClawFleet"' not in windows(), timeout=20)


# ---- WebDriver ------------------------------------------------------------------


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class WebDriver:
    def __init__(self, port):
        self.base = f"http://127.0.0.1:{port}"
        self.session = None
        self.dropped = 0

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        # tauri-driver now and then drops a connection without an answer
        # (its proxy to WebKitWebDriver); the command is sent again.
        for attempt in range(4):
            req = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=60) as r:
                    return json.loads(r.read())["value"]
            except (http.client.RemoteDisconnected, ConnectionResetError):
                if attempt == 3:
                    raise
                self.dropped += 1
                time.sleep(0.5)

    def s(self, method, path, body=None):
        return self.call(method, f"/session/{self.session}{path}", body)

    def find(self, css):
        found = self.s("POST", "/element", {"using": "css selector", "value": css})
        return list(found.values())[0]

    def script(self, js, *args):
        return self.s("POST", "/execute/sync", {"script": js, "args": list(args)})


class Popover(unittest.TestCase):
    def test_the_dashboard_renders_in_the_app_and_heals_through_a_command(self):
        driver_bin = shutil.which("tauri-driver") or os.path.expanduser("~/.cargo/bin/tauri-driver")
        tmp = tempfile.mkdtemp(prefix="clawfleet-popover-")
        ollama = FakeOllama()
        app = App(tmp, ollama.port)
        port = free_port()
        env = dict(app.env, CLAWFLEET_TRAY_OPEN="1", CLAWFLEET_TRAY_KEEP_OPEN="1")
        with open(os.path.join(tmp, "driver.log"), "w") as log:
            driver = subprocess.Popen([driver_bin, "--port", str(port)], env=env,
                                      stdout=subprocess.DEVNULL, stderr=log)
        wd = WebDriver(port)
        try:
            wait_for("tauri-driver", lambda: socket.create_connection(("127.0.0.1", port), 1).close() or True,
                     timeout=20)
            created = wd.call("POST", "/session", {"capabilities": {"alwaysMatch": {
                "browserName": "wry",
                "tauri:options": {"application": BIN, "args": ["--config", app.config, "--open", "--keep-open"]},
            }}})
            wd.session = created["sessionId"]
            url = wait_for("the dashboard to load", lambda: wd.s("GET", "/url").startswith("http://127.0.0.1"))
            self.assertTrue(url)
            wait_for("the machine card", lambda: wd.script(
                "return !!document.querySelector('[data-machine=\"m\"] [data-action=\"restart-ollama\"]')"))
            self.assertEqual(wd.script("return typeof uPlot"), "function", "the chart library loads in WebKit")
            self.assertTrue(wd.script("return !!(window.__TAURI__ && window.__TAURI__.core)"),
                            "the page can reach the app's commands")
            self.assertIsNone(wd.script("return localStorage.getItem('clawfleet.token')"), "no token in the app")
            # Live: the app pushes snapshots as Tauri events, no HTTP stream.
            self.assertEqual(wd.script("return document.documentElement.dataset.live"), "app")
            wait_for("snapshots pushed by the app", lambda: wd.script(
                "return Number(document.getElementById('conn').dataset.updates || 0) >= 3"), timeout=30)
            # Clicked from JavaScript, in one step: the cards are redrawn with
            # each snapshot, so a found element can go stale before a click.
            self.assertTrue(wd.script(
                "const b = document.querySelector('[data-machine=\"m\"] button[data-action=\"restart-ollama\"]');"
                "if (!b) return false; b.click(); return true;"))
            result = wait_for("the outcome next to the button", lambda: wd.script(
                "const r = document.querySelector('[data-machine=\"m\"] .heal-result');"
                "return r && r.className.includes('ok') && r.textContent"), timeout=30)
            self.assertIn("Restarted Ollama on Test machine", result)
            api = wd.script("return location.origin")
            events = http_json(api + "/fleet/v1/events?limit=50")
            started = next(e for e in events if e["kind"] == "action_started" and e["action"] == "restart-ollama")
            self.assertEqual(started["requested_by"], "tray", "through the app's command, not the HTTP API")
            # The tray's own settings, through its commands: a notification
            # kind switched off lands in tray.json.
            wd.script("location.hash = '#settings'; return true")
            wait_for("the tray settings", lambda: wd.script(
                "const c = document.getElementById('tray-card');"
                "return !c.hidden && !!document.querySelector('[data-notify=\"cost\"]')"))
            self.assertTrue(wd.script("const b = document.querySelector('[data-notify=\"cost\"]');"
                                      "b.click(); return !b.checked"))
            saved = wait_for("tray.json", lambda: json.loads(read(os.path.join(tmp, "data", "tray.json"))))
            self.assertEqual(saved["notify"], {"cost": False})
            os.makedirs(SHOTS, exist_ok=True)
            shot = wd.s("GET", "/screenshot")
            with open(os.path.join(SHOTS, "tray-popover-webkit.png"), "wb") as f:
                import base64
                f.write(base64.b64decode(shot))
        finally:
            if wd.session:
                try:
                    wd.call("DELETE", f"/session/{wd.session}")
                except Exception:  # noqa: BLE001 - the app may already be gone
                    pass
            driver.terminate()
            try:
                driver.wait(10)
            except subprocess.TimeoutExpired:
                driver.kill()
            subprocess.run(["pkill", "-f", app.config], check=False)
            ollama.stop()
            if sys.exc_info()[0] is not None:
                print("--- tauri-driver and app log ---\n" + read(os.path.join(tmp, "driver.log"))[-4000:],
                      file=sys.stderr)
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    result = unittest.main(exit=False, verbosity=2).result
    failed = len(result.failures) + len(result.errors)
    print(f"# pass {result.testsRun - failed}")
    print(f"# fail {failed}")
    sys.exit(1 if failed else 0)
