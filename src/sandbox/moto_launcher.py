"""drctl's moto server launcher (embedded in drctl, written out at run time).

Runs moto's WSGI application the way moto's own ThreadedMotoServer does, with
three differences drctl relies on:

* It binds 127.0.0.1 port 0, so the kernel picks a free port: there is no
  window between choosing a port and binding it in which another process could
  take it. The chosen port is reported through --port-file, written atomically
  (temporary file + rename) so a reader never sees half of it.
* With --tether it lives exactly as long as whoever holds the write end of its
  stdin: when that process exits, however it exits (SIGKILL included), the
  kernel closes the pipe, the read below returns EOF and the server shuts down.
  Without --tether it serves until SIGTERM or SIGINT.
* It stands in for the guest OS of drctl's image builders. drctl appends a
  power-off to a builder's user data script and waits for the builder to reach
  `stopped`; on AWS the guest runs the script, whose `shutdown -h now` stops
  the instance. moto runs no guest, so a background thread does what that
  power-off would: an instance that has been `running` for
  DRCTL_SANDBOX_GUEST_SECONDS (default 1) and whose (base64-decoded) user data
  has the line GUEST_MARKER followed later by `shutdown -h now` or `poweroff`
  is stopped (or terminated, if its shutdown behaviour says so) with the state
  reason Client.InstanceInitiatedShutdown, once per instance, as cloud-init
  runs user data once. A script that also has the line NEVER_FINISH never
  powers off (tests of the bake timeout). Other instances are left alone, so
  drctl itself needs no sandbox-specific code.

Keep this file compatible with every Python that moto supports (3.9+).
"""

import argparse
import base64
import binascii
import json
import math
import os
import signal
import sys
import threading
import time

# The guest emulation's contract with drctl's image baking (see the docstring).
# drctl appends "\n" + GUEST_MARKER + "\nshutdown -h now\n" to a builder's
# script; change both sides together.
GUEST_MARKER = "# drctl: provisioning finished; power off so the image is taken from a stopped disk"
NEVER_FINISH = "# drctl-sandbox: never-finish"
POWER_OFF_COMMANDS = ("shutdown -h now", "poweroff")
GUEST_SECONDS_ENV = "DRCTL_SANDBOX_GUEST_SECONDS"
GUEST_SECONDS_DEFAULT = 1.0
GUEST_POLL_SECONDS = 0.2
SHUTDOWN_REASON_CODE = "Client.InstanceInitiatedShutdown"
SHUTDOWN_REASON_MESSAGE = "Client.InstanceInitiatedShutdown: Instance initiated shutdown"


class _Stop(Exception):
    """Raised from a signal handler to leave the main thread's wait."""


def _on_signal(signum, _frame):
    raise _Stop(signal.Signals(signum).name)


def _log(message):
    print("drctl moto launcher[%d]: %s" % (os.getpid(), message), file=sys.stderr, flush=True)


def _write_port_file(path, payload):
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(payload, handle)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _guest_seconds():
    raw = os.environ.get(GUEST_SECONDS_ENV, "").strip()
    if not raw:
        return GUEST_SECONDS_DEFAULT
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not (math.isfinite(seconds) and seconds >= 0):
        _log(
            "ignoring %s=%r (not a number of seconds >= 0); guests power off after %g s"
            % (GUEST_SECONDS_ENV, raw, GUEST_SECONDS_DEFAULT)
        )
        return GUEST_SECONDS_DEFAULT
    return seconds


def _script_of(user_data):
    """The user data script as text, whatever shape moto keeps it in.

    moto 5 keeps a Base64EncodedString whose str() is the base64 text; other
    releases kept the base64 text or bytes, decoded bytes, or a list of them.
    """
    if user_data is None:
        return ""
    if isinstance(user_data, (list, tuple)):
        return "\n".join(_script_of(part) for part in user_data)
    raw = user_data if isinstance(user_data, bytes) else str(user_data).encode("utf-8")
    try:
        # A script is never valid base64 (spaces, newlines, "#"): what
        # decodes strictly is the encoded form.
        raw = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        pass
    return raw.decode("utf-8", errors="replace")


def _powers_off(script):
    """Whether the script has drctl's marker line with a power-off after it,
    and is not a test's never-finishing builder."""
    lines = [line.strip() for line in script.splitlines()]
    if NEVER_FINISH in lines or GUEST_MARKER not in lines:
        return False
    return any(line in POWER_OFF_COMMANDS for line in lines[lines.index(GUEST_MARKER) + 1 :])


def _instances(registry):
    """(account, region, instance) for every instance moto holds."""
    # list() snapshots: request threads add accounts and regions concurrently.
    for account_id, account in list(registry.items()):
        for region, backend in list(account.items()):
            for instance in backend.all_instances():
                yield account_id, region, instance


def _power_off(instance):
    """Do to the instance what its guest's power-off would, through moto's model."""
    # A guest-initiated shutdown obeys InstanceInitiatedShutdownBehavior, and
    # neither DisableApiStop nor DisableApiTermination applies to it.
    behaviour = getattr(instance, "instance_initiated_shutdown_behavior", None) or "stop"
    if behaviour == "terminate":
        instance.terminate()
    else:
        behaviour = "stop"
        instance.stop()
    instance.state_reason.code = SHUTDOWN_REASON_CODE
    instance.state_reason.message = SHUTDOWN_REASON_MESSAGE
    return behaviour


class _Guests:
    """The guest OS of every instance, as far as drctl's builders need one."""

    def __init__(self, registry, seconds):
        self.registry = registry
        self.seconds = seconds
        # Builder id -> monotonic time it was first seen running.
        self.booting = {}
        # Builders whose guest has powered off: cloud-init runs user data once
        # per instance, so one started again stays running.
        self.powered_off = set()
        # Running instances whose script has no power-off, so that each
        # script is decoded once per boot rather than five times a second.
        self.not_builders = set()

    def scan(self, now):
        existing, running = set(), set()
        for account_id, region, instance in _instances(self.registry):
            iid = instance.id
            existing.add(iid)
            if not instance.is_running():
                continue
            running.add(iid)
            if iid in self.powered_off or iid in self.not_builders:
                continue
            if iid not in self.booting:
                if not _powers_off(_script_of(getattr(instance, "user_data", None))):
                    self.not_builders.add(iid)
                    continue
                self.booting[iid] = now
            ran = now - self.booting[iid]
            if ran >= self.seconds:
                did = _power_off(instance)
                del self.booting[iid]
                self.powered_off.add(iid)
                _log(
                    "guest of %s (account %s, %s) finished its script and powered off after %.1f s: %s"
                    % (iid, account_id, region, ran, "stopped" if did == "stop" else "terminated")
                )
        # A builder stopped before its script finished runs it again from the
        # start when started; a reset or removed instance is forgotten.
        self.booting = {iid: t for iid, t in self.booting.items() if iid in running}
        self.not_builders &= running
        self.powered_off &= existing


def _emulate_guests(stop):
    seconds = _guest_seconds()
    try:
        from moto.backends import get_backend

        guests = _Guests(get_backend("ec2"), seconds)
    except Exception as err:  # moto's internals changed: serve without guests.
        _log("cannot read moto's EC2 backends (%r); builders will never power off" % err)
        return
    reported = False
    while not stop.wait(GUEST_POLL_SECONDS):
        try:
            guests.scan(time.monotonic())
        except Exception as err:
            # Logged once, not five times a second; the scan keeps trying, in
            # case the failure was a race with a request changing moto's state.
            if not reported:
                _log("cannot scan moto's EC2 instances (%r); guest power-offs may not happen" % err)
                reported = True


def _wait_for_stdin_eof():
    # os.read returns as soon as any bytes arrive (unlike a buffered read), and
    # b"" only at EOF. Whatever the owner writes is ignored: only closing counts.
    while True:
        try:
            if not os.read(0, 65536):
                return "stdin closed"
        except OSError as err:
            # A stdin that cannot be read can no longer tell us the owner is
            # alive; serving on would risk an orphan, so shut down.
            return "stdin unreadable (%s)" % err


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port-file", required=True, help="where to write the bound port")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--tether", action="store_true", help="shut down when stdin reaches EOF")
    args = parser.parse_args(argv)

    # SIGTERM always means a clean shutdown. A tethered server ignores SIGINT:
    # Ctrl-C is for its owner, which may still be finishing calls against it;
    # the server follows the owner through the stdin tether instead.
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, signal.SIG_IGN if args.tether else _on_signal)

    try:
        # Imported after the handlers are in place: importing moto takes a
        # second or more, and a stop request during it should still be clean.
        import moto
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        app = DomainDispatcherApplication(create_backend_app)
        server = make_server(
            args.host, 0, app, threaded=True, request_handler=MotoRequestHandler
        )
    except _Stop as stop:
        _log("stopped by %s before serving" % stop)
        return 0

    port = server.server_address[1]
    # moto builds some URLs it returns (SQS queue URLs, Lambda's endpoint) from
    # MOTO_PORT, read at request time; make them point at the real port.
    os.environ["MOTO_PORT"] = str(port)

    stop_guests = threading.Event()
    guests = threading.Thread(
        target=_emulate_guests, args=(stop_guests,), name="drctl-guests", daemon=True
    )
    # serve_forever checks for shutdown() every poll_interval; werkzeug's 0.5 s
    # default would make every stop (each test's teardown) wait that long.
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.05},
        name="moto-server",
        daemon=True,
    )
    reason = "unknown"
    try:
        thread.start()
        guests.start()
        _write_port_file(
            args.port_file,
            {"port": port, "pid": os.getpid(), "moto": getattr(moto, "__version__", "unknown")},
        )
        _log("moto %s serving on http://%s:%d" % (getattr(moto, "__version__", "?"), args.host, port))
        if args.tether:
            reason = _wait_for_stdin_eof()
        else:
            while True:
                signal.pause()
    except _Stop as stop:
        reason = str(stop)
    finally:
        # No second signal may interrupt the shutdown itself.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        _log("shutting down: %s" % reason)
        stop_guests.set()
        if thread.is_alive():
            server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
