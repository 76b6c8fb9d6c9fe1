//! The scenario format as exploration and recording will write it: every reference
//! scenario survives a round trip through YAML, and the step docs are generated.

use std::path::{Path, PathBuf};

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn reference_scenarios() -> Vec<PathBuf> {
    hil::scenario::discover(&[repository().join("scenarios")]).unwrap()
}

#[test]
fn every_reference_scenario_reads_back_to_the_same_steps_from_its_own_yaml() {
    let profiles = hil::board::profile::known_names();
    let files = reference_scenarios();
    assert!(files.len() >= 20, "{files:?}");
    for file in files {
        let loaded = hil::scenario::load(&file, &profiles).unwrap();
        let written = hil::scenario::to_yaml(&loaded).unwrap();
        let reread = hil::scenario::parse(&file, &written, &profiles)
            .unwrap_or_else(|e| panic!("{}\n{written}\n{}", file.display(), e.render(false)));
        let actions = |scenario: &hil::scenario::Scenario| -> Vec<hil::steps::Action> {
            scenario
                .steps
                .iter()
                .map(|step| step.action.clone())
                .collect()
        };
        assert_eq!(
            actions(&reread),
            actions(&loaded),
            "{}\n{written}",
            file.display()
        );
        assert_eq!(reread.name, loaded.name);
        assert_eq!(reread.timeout, loaded.timeout);
        assert_eq!(reread.snapshot, loaded.snapshot);
        let specs = |scenario: &hil::scenario::Scenario| {
            (
                scenario
                    .boards
                    .iter()
                    .map(|b| (b.name.clone(), b.spec.clone()))
                    .collect::<Vec<_>>(),
                scenario
                    .clients
                    .iter()
                    .map(|c| (c.name.clone(), c.spec.clone()))
                    .collect::<Vec<_>>(),
            )
        };
        assert_eq!(specs(&reread), specs(&loaded), "{}", file.display());
        // Written again, the text is the same: the writer has one way to say a scenario.
        assert_eq!(hil::scenario::to_yaml(&reread).unwrap(), written);
    }
}

#[test]
fn steps_are_written_one_per_line_in_flow_style() {
    let profiles = hil::board::profile::known_names();
    let file = repository().join("scenarios/phone_turns_on_and_sees_switch.yaml");
    let written = hil::scenario::to_yaml(&hil::scenario::load(&file, &profiles).unwrap()).unwrap();
    assert!(
        written.contains(r#"- expect_relay: {board: lamp, state: "on", within: 500ms}"#),
        "{written}"
    );
    assert!(written.contains("lamp: {profile: sim}"), "{written}");
}

#[test]
fn the_step_table_in_scenarios_readme_is_generated_from_the_steps() {
    let readme = std::fs::read_to_string(repository().join("scenarios/README.md")).unwrap();
    let generated = hil::steps::with_table(&readme).expect("the README has step table markers");
    assert!(
        generated == readme,
        "scenarios/README.md's step table is out of date; regenerate it with\n  cargo run -p hil -- schema --readme scenarios/README.md"
    );
    for name in hil::steps::Action::NAMES {
        assert!(readme.contains(&format!("| `{name}` |")), "{name}");
    }
}

#[test]
fn the_schema_describes_each_step_with_its_doc() {
    let schema = hil::scenario::json_schema();
    let mut generator = schemars::SchemaGenerator::default();
    let docs = hil::steps::Action::docs(&mut generator);
    let text = schema.to_string();
    for doc in docs {
        let summary = serde_json::to_string(&doc.summary).unwrap();
        assert!(
            text.contains(&summary),
            "{} not described: {summary}",
            doc.name
        );
    }
}
