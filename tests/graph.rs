//! `scale graph`: the topology of every stage file, snapshot-tested as Mermaid and DOT; the
//! DOT is drawn by Graphviz to prove it valid; and the README's stage diagrams must be
//! exactly what `scale graph --format mermaid` prints for the file their marker names (no
//! drift between the docs and the blueprints).

mod common;

use std::path::{Path, PathBuf};

use common::Scale;
use scale::model::{Blueprint, Env};
use scale::topology::{dot, mermaid, topology};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Every `blueprints/*.yaml`, sorted (stages added later are covered without editing this).
fn stage_files() -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(repo("blueprints"))
        .expect("blueprints/ is readable")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml"))
        .map(|n| format!("blueprints/{n}"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "expected the stage ladder in blueprints/, found {files:?}");
    files
}

/// A stage file as a learner gets it with no stage variables set; build contexts are not read.
fn graph_of(file: &str) -> scale::topology::Topology {
    let bytes = std::fs::read(repo(file)).expect("stage file readable");
    let bp: Blueprint =
        scale::model::load_bytes(Path::new(file), &bytes, &Env::from_pairs(Vec::<(String, String)>::new()))
            .unwrap_or_else(|d| panic!("{file} does not load:\n{d}"));
    let project = bp.name.as_ref().map(|n| n.value.clone()).expect("stage files name their project");
    let hasher = |_: &scale::model::Build| Ok("0".repeat(64));
    let desired = scale::desired::desired_state(&bp, &project, &hasher).expect("stage files expand");
    topology(&bp, &desired)
}

fn snapshot_name(file: &str) -> String {
    Path::new(file).file_stem().expect("a file name").to_string_lossy().into_owned()
}

#[test]
fn each_stage_graph_as_mermaid_and_dot() {
    for file in stage_files() {
        let g = graph_of(&file);
        let name = snapshot_name(&file);
        insta::assert_snapshot!(format!("{name}.mermaid"), mermaid::render(&g));
        insta::assert_snapshot!(format!("{name}.dot"), dot::render(&g));
    }
}

#[test]
fn stage_graphs_show_what_the_book_draws() {
    let g3 = mermaid::render(&graph_of("blueprints/03-load-balancer.yaml"));
    assert!(g3.contains("subgraph n_shop_private[\"shop_private (internal)\"]"), "{g3}");
    assert!(g3.contains("n_user -- \"localhost:8080 → :80\" --> n_shop_lb_1"), "{g3}");
    assert!(g3.contains("n_shop_lb_1 -- \"pool :8000\" --> n_shop_web_2"), "{g3}");
    let g4 = mermaid::render(&graph_of("blueprints/04-database-replication.yaml"));
    assert!(g4.contains("n_shop_db_1 -. \"WAL stream\" .-> n_shop_db_3"), "{g4}");
    assert!(g4.contains("n_shop_web_2 -- \"reads: db-replica\" --> n_shop_db_2"), "{g4}");
    assert!(g4.contains("n_shop_db_2[(\"shop-db-2<br/>postgres replica\")]"), "{g4}");
}

/// Graphviz must be installed for this test (`apt-get install graphviz`; .ci/run does it).
#[test]
fn dot_output_of_each_stage_is_valid_for_graphviz() {
    let found = std::process::Command::new("dot").arg("-V").output();
    assert!(
        found.is_ok(),
        "Graphviz's `dot` is not installed, so the DOT output cannot be checked: install the \
         `graphviz` package (apt-get install graphviz); .ci/run installs it when missing"
    );
    for file in stage_files() {
        let path = repo(&file);
        let run = Scale::new(&["graph", "--format", "dot", path.to_str().expect("UTF-8 path")]).isolated().run();
        run.success();
        let svg = scale::cli::graph::svg(&run.stdout).unwrap_or_else(|e| panic!("{file}: {e:#}\n{}", run.stdout));
        assert!(svg.contains("<svg"), "{file}: dot printed no SVG");
        for node in graph_of(&file).nodes {
            assert!(svg.contains(&format!("<title>{}</title>", node.id)), "{file}: node {} is not drawn", node.id);
        }
    }
}

/// The Mermaid block after each `<!-- graph: FILE -->` marker (at the start of a line) in
/// the README.
fn readme_graphs() -> Vec<(String, String)> {
    let readme = std::fs::read_to_string(repo("README.md")).expect("README.md readable");
    let mut out = Vec::new();
    let mut rest = readme.as_str();
    while let Some(at) = rest.find("\n<!-- graph: ") {
        let after = &rest[at + "\n<!-- graph: ".len()..];
        let end = after.find(" -->").expect("a graph marker ends with ` -->`");
        let file = after[..end].trim().to_string();
        let body = &after[end..];
        let start =
            body.find("```mermaid\n").expect("a ```mermaid block follows each graph marker") + "```mermaid\n".len();
        let stop = body[start..].find("```").expect("the mermaid block is closed") + start;
        out.push((file, body[start..stop].to_string()));
        rest = &body[stop..];
    }
    out
}

#[test]
fn readme_stage_diagrams_are_generated_from_the_blueprints() {
    let blocks = readme_graphs();
    let marked: Vec<&str> = blocks.iter().map(|(f, _)| f.as_str()).collect();
    for stage in ["01-single-server", "02-web-and-data-tiers", "03-load-balancer", "04-database-replication"] {
        assert!(
            marked.contains(&format!("blueprints/{stage}.yaml").as_str()),
            "README has no graph of {stage}: {marked:?}"
        );
    }
    for (file, block) in blocks {
        assert!(repo(&file).is_file(), "README marks a graph of {file}, which does not exist");
        let expected = mermaid::render(&graph_of(&file));
        assert_eq!(
            block, expected,
            "README's diagram of {file} drifted from the blueprint; regenerate it with \
             `scale graph --format mermaid {file}` (with no stage variables set)"
        );
    }
}
