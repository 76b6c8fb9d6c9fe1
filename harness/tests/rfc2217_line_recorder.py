"""An RFC 2217 server that is not hil's code (pyserial's PortManager) in front of a
loopback serial port that records what the client asks of it: every DTR, RTS and baud
rate change, one per line, in order. Bytes written to the port come back (loop://).

    python rfc2217_line_recorder.py LOG

Prints the TCP port it listens on (127.0.0.1), serves one client, and exits when that
client disconnects, or after 60 s without one.
"""

import socket
import sys
import threading

import serial.rfc2217
from serial.urlhandler.protocol_loop import Serial as Loop


class RecordingLoop(Loop):
    """loop:// that writes every line and rate change to `log` once recording."""

    def __init__(self, log):
        self.log = log
        self.recording = False
        super().__init__(None)

    def record(self, what, value):
        if self.recording:
            self.log.write(f"{what} {value}\n")
            self.log.flush()

    def _update_dtr_state(self):
        self.record("dtr", int(self._dtr_state))

    def _update_rts_state(self):
        self.record("rts", int(self._rts_state))

    def _reconfigure_port(self):
        self.record("baud", self._baudrate)
        super()._reconfigure_port()


def main():
    log = open(sys.argv[1], "w", encoding="ascii")
    port = RecordingLoop(log)
    port.port = "loop://"
    port.timeout = 0.1
    port.open()

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(60)
    print(server.getsockname()[1], flush=True)
    client, _ = server.accept()
    client.settimeout(60)
    port.recording = True

    write_lock = threading.Lock()

    class Connection:
        def write(self, data):
            with write_lock:
                client.sendall(data)

    connection = Connection()
    manager = serial.rfc2217.PortManager(port, connection)
    done = threading.Event()

    def port_to_client():
        while not done.is_set():
            data = port.read(port.in_waiting or 1)
            if data:
                connection.write(b"".join(manager.escape(data)))

    threading.Thread(target=port_to_client, daemon=True).start()
    try:
        while True:
            data = client.recv(4096)
            if not data:
                break
            port.write(b"".join(manager.filter(data)))
    finally:
        done.set()
        log.close()


if __name__ == "__main__":
    main()
