"""tcpproxy.py — a TCP proxy for failure tests, run in the test's own process (asyncio on
a thread of its own), between veltrix and PostgreSQL.

    p = TcpProxy(upstream_port)        listens on 127.0.0.1:p.port, forwards to upstream
    p.stall("up" | "down" | "both")    stops forwarding that way, silently (no RST, no FIN):
                                       bytes wait unread in the kernel, as in a partition;
                                       new connections are accepted and stall the same way
    p.stall(d, existing_only=True)     the same for the connections open now only: new
                                       ones go through (a session cut off, the server
                                       reachable again)
    p.resume()                         forwards again, the waiting bytes first
    p.drop_all()                       resets every connection (RST to both ends) and
                                       forwards again for new ones
    p.held()                           bytes read from a side and not forwarded (a stall
                                       holds at most one read's worth per direction)
    p.connections()                    connections open now
    p.close()

"up" is client to server (veltrix's statements, COMMIT among them), "down" server to
client (the answers). Python standard library only."""
import asyncio
import socket
import struct
import threading


class TcpProxy:
    def __init__(self, upstream_port, upstream_host="127.0.0.1"):
        self.up_addr = (upstream_host, upstream_port)
        self.loop = asyncio.new_event_loop()
        self.flow = {}   # direction -> asyncio.Event (set: new connections forward)
        self.conns = {}  # (client writer, server writer) -> that connection's flow
        self._held = {"up": 0, "down": 0}
        ready = threading.Event()
        self.thread = threading.Thread(target=self._main, args=(ready,), daemon=True)
        self.thread.start()
        ready.wait(10)
        if not getattr(self, "port", None):
            raise RuntimeError("tcpproxy did not start")

    # ---- the proxy's thread
    def _main(self, ready):
        asyncio.set_event_loop(self.loop)
        for d in ("up", "down"):
            self.flow[d] = asyncio.Event()
            self.flow[d].set()
        srv = self.loop.run_until_complete(
            asyncio.start_server(self._client, "127.0.0.1", 0))
        self.server = srv
        self.port = srv.sockets[0].getsockname()[1]
        ready.set()
        self.loop.run_forever()
        self.loop.close()

    async def _client(self, creader, cwriter):
        try:
            await self._forward(creader, cwriter)
        except asyncio.CancelledError:  # close(): ends quietly
            pass

    async def _forward(self, creader, cwriter):
        try:
            sreader, swriter = await asyncio.open_connection(*self.up_addr)
        except OSError:
            self._reset(cwriter)
            return
        pair = (cwriter, swriter)
        flow = {}
        for d in ("up", "down"):
            flow[d] = asyncio.Event()
            if self.flow[d].is_set():
                flow[d].set()
        self.conns[pair] = flow
        await asyncio.gather(self._pump(creader, swriter, flow["up"], "up"),
                             self._pump(sreader, cwriter, flow["down"], "down"),
                             return_exceptions=True)
        self.conns.pop(pair, None)
        for w in pair:
            w.close()

    async def _pump(self, reader, writer, flow, direction):
        while True:
            await flow.wait()
            data = await reader.read(65536)
            if not data:
                writer.write_eof() if writer.can_write_eof() else None
                return
            if not flow.is_set():
                self._held[direction] += len(data)
                await flow.wait()
                self._held[direction] -= len(data)
            writer.write(data)
            await writer.drain()

    @staticmethod
    def _reset(writer):
        sock = writer.get_extra_info("socket")
        if sock is not None:
            try:  # close with SO_LINGER 0: an RST, not a FIN
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
        writer.transport.abort()

    # ---- control, from the test's thread
    def _call(self, fn):
        fut = asyncio.run_coroutine_threadsafe(fn(), self.loop)
        return fut.result(10)

    def stall(self, direction="both", existing_only=False):
        async def go():
            for d in (("up", "down") if direction == "both" else (direction,)):
                if not existing_only:
                    self.flow[d].clear()
                for flow in self.conns.values():
                    flow[d].clear()
        self._call(go)

    def resume(self):
        async def go():
            for flows in [self.flow] + list(self.conns.values()):
                for d in ("up", "down"):
                    flows[d].set()
        self._call(go)

    def drop_all(self):
        async def go():
            for pair, flow in list(self.conns.items()):
                for w in pair:
                    self._reset(w)
                for d in ("up", "down"):
                    flow[d].set()
            self.conns.clear()
            for d in ("up", "down"):
                self.flow[d].set()
        self._call(go)

    def held(self):
        return dict(self._held)

    def connections(self):
        return len(self.conns)

    def close(self):
        """Closes the listener and every connection (with a FIN), then the thread."""
        async def go():
            self.server.close()
            for pair in list(self.conns):
                for w in pair:
                    w.transport.abort()
            me = asyncio.current_task()
            tasks = [t for t in asyncio.all_tasks() if t is not me]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if self.loop.is_running():
            self._call(go)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
