//! The draft's timings: how long an expectation may wait, from the latency the recording
//! saw, and how long the quiet after a stimulus that changed nothing is kept.
//!
//! The rule, as README.md states it: `within` is 3 × the observed latency, rounded up
//! to the next 100 ms, and at least 200 ms. A recording is one run on one machine; the
//! margin absorbs a slower machine or a busier moment, while a device that takes far
//! longer than it did on the desk still fails.

use std::time::Duration;

/// How many times the observed latency an expectation may take.
pub const MARGIN: u32 = 3;
/// No expectation is given less than this.
pub const FLOOR: Duration = Duration::from_millis(200);
/// `within` is rounded up to a multiple of this.
pub const GRAIN: Duration = Duration::from_millis(100);
/// The longest quiet kept after a stimulus that made the board do nothing.
pub const LONGEST_QUIET: Duration = Duration::from_secs(1);
/// Quiet and pauses are rounded down to a multiple of this.
pub const QUIET_GRAIN: Duration = Duration::from_millis(10);

/// The `within` of an expectation whose event came `latency` after its stimulus.
pub fn within(latency: Duration) -> Duration {
    let widened = latency.saturating_mul(MARGIN);
    round_up(widened, GRAIN).max(FLOOR)
}

/// How long a quiet (or pause) of `observed` is kept: at most [`LONGEST_QUIET`],
/// rounded down; zero when too short to matter.
pub fn quiet(observed: Duration) -> Duration {
    round_down(observed.min(LONGEST_QUIET), QUIET_GRAIN)
}

/// Microseconds on the trace's clock as a duration.
pub fn micros(us: u64) -> Duration {
    Duration::from_micros(us)
}

fn round_up(value: Duration, grain: Duration) -> Duration {
    let grain_us = grain.as_micros();
    let steps = value.as_micros().div_ceil(grain_us);
    Duration::from_micros(u64::try_from(steps * grain_us).unwrap_or(u64::MAX))
}

fn round_down(value: Duration, grain: Duration) -> Duration {
    let grain_us = grain.as_micros();
    let steps = value.as_micros() / grain_us;
    Duration::from_micros(u64::try_from(steps * grain_us).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn within_is_three_times_the_latency_rounded_up_and_at_least_200ms() {
        assert_eq!(within(Duration::ZERO), ms(200));
        assert_eq!(within(Duration::from_micros(1_500)), ms(200));
        assert_eq!(within(ms(67)), ms(300));
        assert_eq!(within(ms(100)), ms(300));
        assert_eq!(within(ms(101)), ms(400));
        assert_eq!(within(ms(1_050)), ms(3_200));
    }

    #[test]
    fn quiet_is_capped_at_a_second_and_rounded_down() {
        assert_eq!(quiet(ms(4)), Duration::ZERO);
        assert_eq!(quiet(Duration::from_micros(347_900)), ms(340));
        assert_eq!(quiet(ms(12_000)), ms(1_000));
    }
}
