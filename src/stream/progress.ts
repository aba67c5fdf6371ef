import { Transform, type TransformCallback } from "node:stream";

export type ProgressListener = (bytes: number, done: boolean) => void;

/** Counts bytes for progress displays; reports at most every `intervalMs`, and once at the end. */
export class ProgressStage extends Transform {
  private bytes = 0;
  private last = 0;

  constructor(
    private readonly listener: ProgressListener,
    private readonly intervalMs = 250,
  ) {
    super({ highWaterMark: 1 << 20 });
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    const now = Date.now();
    if (now - this.last >= this.intervalMs) {
      this.last = now;
      this.listener(this.bytes, false);
    }
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    this.listener(this.bytes, true);
    callback();
  }
}
