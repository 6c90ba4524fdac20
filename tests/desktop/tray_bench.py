#!/usr/bin/python3
"""The tray app's cost: `cargo xtask bench tray` runs this as

    xvfb-run -a dbus-run-session -- /usr/bin/python3 tests/desktop/tray_bench.py BIN

against the desktop build (release, made for size), with a StatusNotifierWatcher and a fake Ollama
(from desktop_test.py), and prints a Markdown table:

- time from launch to the tray icon registering (median of 5 launches);
- memory as PSS summed over the app and every process it started (WebKit's
  network and web processes, and the popover's helper process), with the
  popover never opened, open, and closed again (the helper and its web
  processes exit on close); and of the first launch in this new X session
  (the first GTK program of a session probes GL for its visuals);
- idle CPU over 60 s with the popover closed, and CPU over 20 s with it
  open (app and children, from /proc/<pid>/stat).

It also prints the memory figures as `ROW\tGROUP\tfigure\tmeasured\tbaseline\ttarget\tmet`
lines, which `cargo xtask bench` gathers into its table.
"""

import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import desktop_test as d  # noqa: E402

BIN = sys.argv[1] if len(sys.argv) > 1 else d.BIN
IDLE_SECS = int(os.environ.get("TRAY_BENCH_IDLE_SECS", "60"))
OPEN_SECS = int(os.environ.get("TRAY_BENCH_OPEN_SECS", "20"))
TICK = os.sysconf("SC_CLK_TCK")


def tree(pid):
    """pid and all its descendants."""
    return [pid] + d.descendants(pid)


def cpu_percent(pid, secs):
    """CPU of pid and its descendants over the next secs seconds, in % of a core."""
    c0 = sum(cpu_ticks(p) for p in tree(pid))
    time.sleep(secs)
    c1 = sum(cpu_ticks(p) for p in tree(pid))
    return (c1 - c0) / TICK / secs * 100


def name(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return "?"


def pss_kib(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_ticks(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
    except (OSError, IndexError, ValueError):
        return 0


def memory(pid):
    procs = tree(pid)
    per = {}
    for p in procs:
        per[name(p)] = per.get(name(p), 0) + pss_kib(p)
    return sum(per.values()), per


def launch(tmp, ollama, watcher):
    os.makedirs(tmp, exist_ok=True)
    app = d.App(tmp, ollama.port)
    watcher.items.clear()
    t0 = time.monotonic()
    with open(app.log, "w") as log:
        app.proc = subprocess.Popen([BIN, "--config", app.config], env=app.env, stdout=subprocess.PIPE,
                                    stderr=log, text=True)
    d.wait_for("the tray icon", lambda: watcher.items and watcher.items[0], timeout=60, every=0.01)
    took = time.monotonic() - t0
    app.api = app.proc.stdout.readline().strip().split(" on ", 1)[1]
    return app, took


def main():
    tmp = tempfile.mkdtemp(prefix="clawfleet-tray-bench-")
    ollama = d.FakeOllama()
    watcher = d.Watcher()
    starts = []
    for i in range(5):
        app, took = launch(os.path.join(tmp, f"run{i}"), ollama, watcher)
        starts.append(took)
        if i == 0:
            time.sleep(10)
            first_session, _ = memory(app.proc.pid)
        if i < 4:
            app.stop()
    item = watcher.items[0]
    time.sleep(10)
    closed_first, per_closed = memory(app.proc.pid)

    idle_pct = cpu_percent(app.proc.pid, IDLE_SECS)

    def click(label):
        node = d.wait_for(label, lambda: d.find(watcher.layout(item), label))
        watcher.click(item, node["id"])

    click("Open dashboard")
    d.wait_for("the web process", lambda: any(name(p).startswith("WebKitWebProces") for p in tree(app.proc.pid)))
    time.sleep(10)
    opened, per_open = memory(app.proc.pid)
    open_pct = cpu_percent(app.proc.pid, OPEN_SECS)
    click("Close dashboard")
    d.wait_for("the web process to go",
               lambda: not any(name(p).startswith("WebKitWebProces") for p in tree(app.proc.pid)), timeout=30)
    time.sleep(5)
    closed_after, per_after = memory(app.proc.pid)
    app.stop()
    ollama.stop()

    mib = lambda k: k / 1024  # noqa: E731
    both = lambda k: f"{k / 1024:.1f} MiB ({k * 1024 / 1e6:.1f} MB)"  # noqa: E731
    print(f"\nclawfleet-tray (desktop profile, {os.path.getsize(BIN) / 1e6:.1f} MB binary) under Xvfb, private D-Bus session:\n")
    print("| figure | value | target |")
    print("|---|---|---|")
    print(f"| launch to tray icon registered, median of 5 (min–max) | {statistics.median(starts) * 1000:.0f} ms "
          f"({min(starts) * 1000:.0f}–{max(starts) * 1000:.0f}) | < 1 s |")
    print(f"| PSS, first launch in a new X session, popover never opened | {both(first_session)} | ≤ 80 MB |")
    print(f"| PSS, popover never opened | {both(closed_first)} | ≤ 80 MB |")
    print(f"| PSS, popover open (10 s after opening) | {both(opened)} | ≤ 200 MB |")
    print(f"| PSS, popover closed again | {both(closed_after)} | ≤ 80 MB |")
    print(f"| idle CPU over {IDLE_SECS} s, popover closed | {idle_pct:.3f}% of a core | < 1% |")
    print(f"| CPU over {OPEN_SECS} s with the popover open (a snapshot a second) | {open_pct:.2f}% of a core | — |")
    print("\nPSS by process (MiB): " + "; ".join(
        f"{label}: " + ", ".join(f"{n} {mib(k):.1f}" for n, k in sorted(per.items()) if k)
        for label, per in [("never opened", per_closed), ("open", per_open), ("closed again", per_after)]))

    mb = lambda k: k * 1024 / 1e6  # noqa: E731
    for figure, kib, target in [
        ("tray app PSS (app + helper + WebKit processes), popover closed (never opened)", closed_first, 80),
        ("tray app PSS, popover open (10 s after opening)", opened, 200),
        ("tray app PSS, popover closed again", closed_after, 80),
    ]:
        met = "yes" if mb(kib) <= target else "**no**"
        print(f"ROW\t45\t{figure}\t**{both(kib)}**\t—\t≤ {target} MB\t{met}")


if __name__ == "__main__":
    main()
