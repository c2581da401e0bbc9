"""drctl's moto server launcher (embedded in drctl, written out at run time).

Runs moto's WSGI application the way moto's own ThreadedMotoServer does, with
two differences drctl relies on:

* It binds 127.0.0.1 port 0, so the kernel picks a free port: there is no
  window between choosing a port and binding it in which another process could
  take it. The chosen port is reported through --port-file, written atomically
  (temporary file + rename) so a reader never sees half of it.
* With --tether it lives exactly as long as whoever holds the write end of its
  stdin: when that process exits, however it exits (SIGKILL included), the
  kernel closes the pipe, the read below returns EOF and the server shuts down.
  Without --tether it serves until SIGTERM or SIGINT.

Keep this file compatible with every Python that moto supports (3.9+).
"""

import argparse
import json
import os
import signal
import sys
import threading


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
        if thread.is_alive():
            server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
