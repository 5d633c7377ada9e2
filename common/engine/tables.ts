/**
 * The small containers the engine's indexes are built of (see `indexRun` in state.ts):
 * per-instance tables over the run's shared task positions, a Map and a Set allocated
 * only when first written, and the heap that orders a run's queued instances. They exist
 * for memory: whatever one workflow instance costs here, a 100,000-instance run pays
 * 100,000 times.
 */
import type { TaskInstance } from "../../protocol/runner";

/** Task id → task instance of one workflow instance, by the run's shared positions (`indexRun`). */
export class TaskTable {
  constructor(
    private readonly positions: ReadonlyMap<string, number>,
    private readonly list: readonly TaskInstance[],
  ) {}

  get(task: string): TaskInstance | undefined {
    const i = this.positions.get(task);
    return i === undefined ? undefined : this.list[i];
  }

  has(task: string): boolean {
    return this.positions.has(task);
  }
}

/** Task id → a number, for the run's tasks only, by the run's shared positions. */
export class Tally {
  private readonly values: number[] = [];
  constructor(private readonly positions: ReadonlyMap<string, number>) {}

  get(task: string): number | undefined {
    const i = this.positions.get(task);
    return i === undefined ? undefined : this.values[i];
  }

  set(task: string, value: number): this {
    const i = this.positions.get(task);
    if (i === undefined) throw new Error(`no task ${task} in this run`);
    while (this.values.length < i) this.values.push(0);
    this.values[i] = value;
    return this;
  }
}

const NO_ENTRIES: ReadonlyMap<unknown, unknown> = new Map();
const NO_VALUES: ReadonlySet<unknown> = new Set();

/** A Map allocated on first `set` (most instances never have an `after` list). */
export class LazyMap<K, V> {
  private map: Map<K, V> | undefined;

  get(key: K): V | undefined {
    return this.map?.get(key);
  }

  set(key: K, value: V): this {
    (this.map ??= new Map()).set(key, value);
    return this;
  }

  [Symbol.iterator](): IterableIterator<[K, V]> {
    return (this.map ?? (NO_ENTRIES as ReadonlyMap<K, V>)).entries();
  }
}

/** A Set allocated on first `add` (instances that have not run yet hold nothing); iteration is the Set's own, live. */
export class LazySet<T> {
  private set: Set<T> | undefined;

  get size(): number {
    return this.set?.size ?? 0;
  }

  add(value: T): this {
    (this.set ??= new Set()).add(value);
    return this;
  }

  delete(value: T): boolean {
    return this.set?.delete(value) ?? false;
  }

  has(value: T): boolean {
    return this.set?.has(value) ?? false;
  }

  [Symbol.iterator](): IterableIterator<T> {
    return (this.set ?? (NO_VALUES as ReadonlySet<T>)).values();
  }
}

/** A binary min-heap of numbers (instance positions). */
export class MinHeap {
  private readonly items: number[] = [];

  get size(): number {
    return this.items.length;
  }

  peek(): number | undefined {
    return this.items[0];
  }

  push(value: number): void {
    const a = this.items;
    a.push(value);
    let i = a.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (a[parent] <= a[i]) break;
      [a[parent], a[i]] = [a[i], a[parent]];
      i = parent;
    }
  }

  pop(): number | undefined {
    const a = this.items;
    if (a.length === 0) return undefined;
    const top = a[0];
    const last = a.pop()!;
    if (a.length > 0) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && a[l] < a[m]) m = l;
        if (r < a.length && a[r] < a[m]) m = r;
        if (m === i) break;
        [a[m], a[i]] = [a[i], a[m]];
        i = m;
      }
    }
    return top;
  }
}
