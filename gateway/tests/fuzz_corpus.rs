//! The fuzz targets' smoke run on stable: every target's body over its committed seed
//! corpus (`fuzz/corpus/<target>/`) and the regression inputs of crashes found and fixed
//! (`fuzz/artifacts/<target>/`). The long runs need nightly: `fuzz/run.sh`.

use std::path::Path;

use iks_gateway::fuzzing::TARGETS;

#[test]
fn every_target_passes_its_corpus_and_regressions() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    for (name, body) in TARGETS {
        let mut inputs = 0;
        for dir in ["corpus", "artifacts"] {
            let Ok(entries) = std::fs::read_dir(fuzz.join(dir).join(name)) else { continue };
            for entry in entries {
                let path = entry.unwrap().path();
                let data = std::fs::read(&path).unwrap();
                // A panic names the input: rerun it with `cargo +nightly fuzz run <target> <file>`.
                println!("{name}: {}", path.display());
                body(&data);
                inputs += 1;
            }
        }
        assert!(inputs > 0, "fuzz/corpus/{name}/ has no seeds");
        println!("{name}: {inputs} inputs");
    }
}
