//! A fleet small enough for CI, through the embedded broker: each of 2 000 simulated
//! boards subscribes, obeys its own command and reports a press that reaches the phone.

mod support;

use hil::bench::fleet;
use hil::board::Simulator;

const BOARDS: usize = 2_000;

#[tokio::test(flavor = "current_thread")]
async fn every_board_of_a_fleet_takes_its_command_and_reports_its_press() {
    hil::broker::raise_open_file_limit();
    assert!(
        fleet::capacity(1) >= BOARDS,
        "{BOARDS} boards need {BOARDS} descriptors beside the reserve; this process may open {}",
        hil::broker::boards_that_fit(1).1
    );
    // Fails naming what did not come, and for how many of the boards.
    fleet::round(support::config(), BOARDS, Simulator::Core)
        .await
        .expect("every board subscribed, switched on by its command and heard when pressed");
}
