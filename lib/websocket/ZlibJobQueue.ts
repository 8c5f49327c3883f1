/**
 * The process-wide limit on asynchronous zlib jobs (permessage-deflate's large messages, see PerMessageDeflate.ts).
 *
 * Node runs async zlib on libuv's thread pool (UV_THREADPOOL_SIZE threads, 4 by default), which file system
 * calls, `dns.lookup` and async crypto share. Without a limit, many sessions each inflating a large message would
 * queue up work there in no particular order and delay everything else that needs a thread; with it, at most
 * `concurrency` zlib jobs run at once and the others wait here, first in first out.
 *
 * What bounds the wait: a session has at most one job here for each direction. Inflating, its reads are held
 * until its job completes, so it cannot start a second one; deflating, its later large sends wait in its own data
 * queue (bounded by `maxBufferedBytes`) until the one in progress completes. So at most two jobs per session
 * wait. A session that ends meanwhile (closed by the application, a limit or a server stop) leaves its entry, a
 * closure holding the message's input, until its turn comes, when it is skipped at no cost; a peer cannot end its
 * session early to pile such entries up, since with its reads held its disconnect is only read after its job.
 */
import process from 'node:process';
export class ZlibJobQueue {
  private _concurrency: number;
  private running = 0;
  private maxRunning = 0;
  private started = 0;
  private skipped = 0;
  /** FIFO: jobs from `head` on are waiting (the array is compacted when it empties or its head grows large). */
  private waiting: ZlibJob[] = [];
  private head = 0;
  /** Set while `pump` runs, so that a job that completes synchronously does not recurse into it. */
  private pumping = false;
  /** One completion function for every job: a job calls it exactly once. */
  private readonly done = (): void => {
    this.running--;
    this.pump();
  };

  /** @param concurrency at most this many jobs at once (an integer >= 1). */
  constructor(concurrency: number) {
    this._concurrency = checkConcurrency(concurrency);
  }

  /** The most jobs that run at once. Setting it resets `stats().maxRunning`; raising it starts waiting jobs. */
  get concurrency(): number {
    return this._concurrency;
  }

  set concurrency(value: number) {
    this._concurrency = checkConcurrency(value);
    this.maxRunning = this.running;
    this.pump();
  }

  /**
   * Runs `job` when fewer than `concurrency` jobs run (now, or after the jobs submitted before it). The job
   * checks whether it is still wanted when it starts, and returns false (without calling `done`) when it is not;
   * otherwise it starts its zlib call, returns true and calls `done` exactly once when that call completes.
   */
  submit(job: ZlibJob): void {
    this.waiting.push(job);
    this.pump();
  }

  /** Counters, for tests and monitoring. */
  stats(): ZlibJobQueueStats {
    return {
      concurrency: this._concurrency,
      running: this.running,
      waiting: this.waiting.length - this.head,
      maxRunning: this.maxRunning,
      started: this.started,
      skipped: this.skipped,
    };
  }

  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.running < this._concurrency && this.head < this.waiting.length) {
        const job = this.waiting[this.head]!;
        this.waiting[this.head++] = undefined as unknown as ZlibJob; // let it be collected
        if (this.head === this.waiting.length) {
          this.waiting = [];
          this.head = 0;
        } else if (this.head >= 1024 && this.head * 2 >= this.waiting.length) {
          this.waiting = this.waiting.slice(this.head);
          this.head = 0;
        }
        this.running++;
        let started = false;
        try {
          started = job(this.done);
        } finally {
          if (!started) this.running--;
        }
        if (started) {
          this.started++;
          if (this.running > this.maxRunning) this.maxRunning = this.running;
        } else {
          this.skipped++;
        }
      }
    } finally {
      this.pumping = false;
    }
  }
}

/**
 * One job of a {@link ZlibJobQueue}: returns false when it is no longer wanted (nothing started), else true after
 * starting its zlib call, whose completion calls `done` exactly once.
 */
export type ZlibJob = (done: () => void) => boolean;

/** What {@link ZlibJobQueue.stats} returns. */
export interface ZlibJobQueueStats {
  /** The limit. */
  readonly concurrency: number;
  /** Jobs running now. */
  readonly running: number;
  /** Jobs waiting for a slot. */
  readonly waiting: number;
  /** The most jobs that ran at once since the queue was made or `concurrency` last set (never above the limit). */
  readonly maxRunning: number;
  /** Jobs started. */
  readonly started: number;
  /** Jobs skipped when their turn came (their session had closed). */
  readonly skipped: number;
}

function checkConcurrency(value: number): number {
  if (!(Number.isInteger(value) && value >= 1)) throw new RangeError(`zlib job concurrency must be an integer >= 1, not ${value}`);
  return value;
}

/** libuv's thread pool size: UV_THREADPOOL_SIZE when set (libuv reads it once, at the pool's first use), else 4. */
function threadPoolSize(): number {
  const n = Number(process.env.UV_THREADPOOL_SIZE);
  return Number.isInteger(n) && n >= 1 ? Math.min(n, 1024) : 4;
}

/**
 * The queue of every permessage-deflate session of the process, limited to libuv's thread pool size (4 unless
 * UV_THREADPOOL_SIZE says otherwise). Set `zlibJobQueue.concurrency` to change the limit, e.g. lower to leave
 * threads to the file system.
 */
export const zlibJobQueue = new ZlibJobQueue(threadPoolSize());
