// A TCP proxy in the test process, in front of one etcd client port: `cut()` makes it a black hole
// (bytes are dropped both ways, connections stay open: no RST, no FIN), as a silent partition looks
// to the runner behind it; `heal()` forwards again. One per runner, so each can be cut off alone.
import { createConnection, createServer, type Socket } from 'node:net';

export interface TcpProxy {
  /** `http://127.0.0.1:<port>`: the endpoint to hand a runner. */
  readonly url: string;
  cut(): void;
  heal(): void;
  close(): Promise<void>;
}

export async function tcpProxy(target: string): Promise<TcpProxy> {
  const { hostname, port } = new URL(target);
  let cut = false;
  const sockets = new Set<Socket>();
  const track = (socket: Socket): void => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
  };
  const server = createServer((client) => {
    track(client);
    const upstream = createConnection({ host: hostname, port: Number(port) });
    track(upstream);
    client.on('data', (chunk) => void (cut || upstream.write(chunk)));
    upstream.on('data', (chunk) => void (cut || client.write(chunk)));
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('tcp proxy: no port');
  return {
    url: `http://127.0.0.1:${address.port}`,
    cut: () => void (cut = true),
    heal: () => void (cut = false),
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
