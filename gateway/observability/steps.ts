/**
 * Pipeline step timings of one request, for the step latency histograms and the step spans.
 * A flat array of performance.now() marks, [start, end] per step, 0 = not reached: one small
 * allocation per routed request and nothing awaited.
 */
export const STEPS = ['identity', 'device', 'decision', 'upstream'] as const;
export type StepName = (typeof STEPS)[number];
export const STEP: Readonly<Record<StepName, number>> = { identity: 0, device: 1, decision: 2, upstream: 3 };

export type StepTimes = Float64Array;

export const newStepTimes = (): StepTimes => new Float64Array(STEPS.length * 2);

export function stepStart(times: StepTimes | null, step: number): void {
  if (times) times[step * 2] = performance.now();
}

export function stepEnd(times: StepTimes | null, step: number): void {
  if (times) times[step * 2 + 1] = performance.now();
}
