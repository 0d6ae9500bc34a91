/**
 * The agent's local feedback to its pick strategy: the simulator uses the
 * very functions the agent SDK uses (actors/strategies/feedback.ts), so that
 * both follow one rule.
 */
export { notePick, noteReport, noteRelease, pickBounded, latencyAt, liveInflight, FEEDBACK_DEFAULTS, DEFAULT_MAX_TRIALS, type FeedbackOptions } from '../../actors/strategies/feedback.ts';
