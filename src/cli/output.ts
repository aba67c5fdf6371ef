import pc from "picocolors";

type Colors = ReturnType<typeof pc.createColors>;

/**
 * Everything a command prints goes through here: results to stdout (one JSON document with
 * --json), notes and progress to stderr, so `--json | jq` always works.
 */
export class Output {
  readonly color: Colors;

  constructor(
    readonly json: boolean,
    colorEnabled: boolean,
    readonly verbose: boolean,
    private readonly stdout: NodeJS.WritableStream = process.stdout,
    private readonly stderr: NodeJS.WritableStream = process.stderr,
  ) {
    this.color = pc.createColors(colorEnabled);
  }

  /** The command's result: JSON as-is with --json, otherwise the rendered lines. */
  result(value: unknown, render: () => string | string[]): void {
    if (this.json) {
      this.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
      return;
    }
    const lines = render();
    const text = Array.isArray(lines) ? lines.join("\n") : lines;
    if (text.length > 0) this.stdout.write(text.endsWith("\n") ? text : `${text}\n`);
  }

  /** A note for humans (stderr, so it never mixes with results). */
  note(message: string): void {
    this.stderr.write(`${message}\n`);
  }

  warn(message: string): void {
    this.stderr.write(`${this.color.yellow("warning:")} ${message}\n`);
  }

  detail(message: string): void {
    if (this.verbose) this.stderr.write(`${this.color.dim(message)}\n`);
  }

  raw(text: string): void {
    this.stdout.write(text);
  }
}

/** NO_COLOR (https://no-color.org), --no-color, FORCE_COLOR and whether stdout is a terminal. */
export function colorWanted(
  flag: boolean | undefined,
  env = process.env,
  isTty = Boolean(process.stdout.isTTY),
): boolean {
  if (flag === false) return false;
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== "") return false;
  if (env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== "0") return true;
  return isTty && env.TERM !== "dumb";
}

export interface Column<T> {
  header: string;
  value: (row: T) => string;
  align?: "left" | "right";
}

/** A plain aligned table (no box drawing: it must survive logs, e-mail and `less`). */
export function renderTable<T>(columns: Column<T>[], rows: T[]): string[] {
  const cells = rows.map((row) => columns.map((column) => column.value(row)));
  const widths = columns.map((column, index) =>
    Math.max(visibleLength(column.header), ...cells.map((row) => visibleLength(row[index] ?? ""))),
  );
  const line = (values: string[]) =>
    values
      .map((value, index) => {
        const pad = " ".repeat(Math.max(0, (widths[index] ?? 0) - visibleLength(value)));
        return columns[index]?.align === "right" ? pad + value : value + pad;
      })
      .join("  ")
      .trimEnd();
  return [line(columns.map((c) => c.header.toUpperCase())), ...cells.map(line)];
}

function visibleLength(text: string): number {
  // eslint-disable-next-line no-control-regex
  return text.replace(/\u001b\[[0-9;]*m/g, "").length;
}

export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(value >= 100 ? 0 : 1)} ${units[unit]}`;
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const seconds = ms / 1000;
  if (seconds < 60) return `${seconds.toFixed(1)}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes}m${Math.round(seconds % 60)}s`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours}h${minutes % 60}m`;
  return `${Math.floor(hours / 24)}d${hours % 24}h`;
}

export function formatAge(from: Date, now = new Date()): string {
  return formatDuration(Math.max(0, now.getTime() - from.getTime()));
}
