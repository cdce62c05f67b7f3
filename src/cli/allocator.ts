import { spawn } from 'node:child_process';

/**
 * glibc's allocator settings for a process that makes and frees hundreds of onnxruntime sessions across
 * worker threads. By default each thread gets its own heap arena and the mmap threshold rises after every
 * large free, so freed tensors of a few megabytes stay in fragmented heaps: scoring the SmolLM2-135M shape
 * peaked at 2.24 GB with them, 1.25 GB with two arenas and a fixed 1 MiB threshold, at the same speed (64 KiB
 * was 16% slower). glibc reads these only at start-up, hence a relaunch.
 */
export const ALLOCATOR_ENV = { MALLOC_ARENA_MAX: '2', MALLOC_MMAP_THRESHOLD_: '1048576' } as const;

/** Set in the relaunched process: the pid of the process that launched it. */
const LAUNCHER = 'TESSERA_LAUNCHER_PID';

/** Whether this process should run again with `ALLOCATOR_ENV` (Linux/glibc, not already set, not opted out). */
export function wantsAllocatorRelaunch(env: NodeJS.ProcessEnv = process.env): boolean {
  return process.platform === 'linux' && env.TESSERA_NO_RELAUNCH === undefined && env[LAUNCHER] === undefined && Object.keys(ALLOCATOR_ENV).some((k) => env[k] === undefined);
}

/**
 * Runs this same command again in a child with the allocator settings and resolves to its exit code. The
 * child has its own process group, so a terminal's Ctrl-C reaches it once, forwarded from here (a second
 * SIGINT would stop it uncleanly), as does a signal sent to this process alone (as `timeout` sends it).
 */
export function relaunchWithAllocatorSettings(): Promise<number> {
  const child = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
    stdio: 'inherit',
    detached: true,
    env: { ...ALLOCATOR_ENV, ...process.env, [LAUNCHER]: String(process.pid) },
  });
  const forward = (signal: NodeJS.Signals) => () => child.kill(signal);
  for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(s, forward(s));
  return new Promise((resolve) => {
    child.on('exit', (code, signal) => resolve(code ?? (signal === 'SIGINT' ? 130 : 1)));
    child.on('error', () => resolve(1));
  });
}

/**
 * In a relaunched process: dies with its launcher. A launcher killed outright (SIGKILL, which it cannot
 * forward) must not leave its command running on, writing what a rerun is about to write.
 */
export function dieWithLauncher(env: NodeJS.ProcessEnv = process.env): void {
  const launcher = Number(env[LAUNCHER]);
  if (!Number.isInteger(launcher) || launcher <= 0) return;
  setInterval(() => {
    if (process.ppid !== launcher) process.kill(process.pid, 'SIGKILL');
  }, 100).unref();
}
