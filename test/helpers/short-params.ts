/**
 * Route parameters with short times, so that windows, ejections, decays,
 * drains, trials and load periods all come round within a unit test's run
 * (the route actor's tick-schedule and idle-bound property tests).
 */
export const SHORT_PARAMS = {
  idle_timeout: 1,
  overload_timeout: 0.7,
  base_ejection_time: 0.5,
  max_ejection_time: 2,
  ejection_decay_time: 1.5,
  drain_time: 0.8,
  probe_trial_timeout: 0.4,
  weight_update_period: 0.3,
  weight_blackout_period: 0.6,
  weight_expiration_period: 1.2,
  slow_start_window: 0.5,
  contin_err_limit: 3,
  probe_succ_limit: 2,
  min_requests: 2,
  latency_min_calls: 3,
  latency_min_gap_ms: 5,
} as const;

/** Host addresses of those tests: host i is IPS[i]:8000. */
export const IPS = ['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.4', '10.0.0.5'];
