import { formatBytes, formatDuration } from "./output.js";

/**
 * One status line on a terminal (bytes, rate, ETA when the total is known), redrawn in place;
 * nothing at all when stderr is not a terminal, so logs stay line-oriented.
 */
export function progressLine(
  label: string,
  total?: number,
  stream: NodeJS.WriteStream = process.stderr,
): (bytes: number, done: boolean) => void {
  if (!stream.isTTY) return () => undefined;
  const started = Date.now();
  return (bytes, done) => {
    const seconds = Math.max(0.001, (Date.now() - started) / 1000);
    const rate = bytes / seconds;
    const share = total && total > 0 ? ` ${Math.min(100, Math.floor((bytes / total) * 100))}%` : "";
    const eta =
      total && rate > 0 && bytes < total
        ? ` ETA ${formatDuration(((total - bytes) / rate) * 1000)}`
        : "";
    stream.write(`\r\u001b[2K${label}: ${formatBytes(bytes)}${share} ${formatBytes(rate)}/s${eta}`);
    if (done) stream.write("\n");
  };
}
