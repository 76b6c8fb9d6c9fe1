use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::fault;
use super::{Checks, Needs, Role, Scene, StepError, StepKind};

/// The most noise one step may send.
const MAX_NOISE_BYTES: usize = 1 << 20;

/// One line of `bytes` random bytes on the board's serial console input, as from a noisy
/// line.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SerialNoise {
    pub board: String,
    /// How many random bytes (1 to 1048576), drawn from the scenario's seed.
    pub bytes: usize,
}

impl StepKind for SerialNoise {
    const NAME: &'static str = "serial_noise";

    fn role(&self) -> Role<'_> {
        Role::Stimulus
    }

    fn check(&self, checks: &mut Checks<'_>) {
        checks.board(&self.board);
        if self.bytes == 0 || self.bytes > MAX_NOISE_BYTES {
            checks.field(
                "bytes",
                format!("`bytes: {}` is out of range", self.bytes),
                format!("1 to {MAX_NOISE_BYTES} bytes"),
            );
        }
    }

    fn needs(&self) -> Needs<'_> {
        Needs::NOTHING
    }

    async fn run<S: Scene>(&self, scene: &mut S) -> Result<(), StepError> {
        // One garbled line: random bytes without line ends, then a line end, so the
        // console sees one line whatever the seed.
        let mut rng = fastrand::Rng::with_seed(scene.step_seed());
        let bytes: Vec<u8> = std::iter::repeat_with(|| rng.u8(..))
            .filter(|byte| !matches!(byte, b'\n' | b'\r'))
            .take(self.bytes)
            .chain(*b"\r\n")
            .collect();
        fault::record(scene, Self::NAME, &self.board, format!("{} bytes", self.bytes));
        scene
            .board(&self.board)?
            .serial_noise(&bytes)
            .await
            .map_err(StepError::Board)
    }
}
