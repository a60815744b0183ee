//! The README, run: every ```` ```sh ```` block of `README.md`, in the order written, in one
//! fresh folder that holds only links to the repository's `data/` and `conformance/`, with the
//! `slipway` under test first on `PATH`. The blocks share the folder, so a block may use what
//! an earlier one made, exactly as a reader following the README would. A block that cannot run
//! here says so in the line before it, `<!-- readme-test: skip: REASON -->`; the test prints
//! every skipped block with its reason, and refuses a skip without one.
//!
//! Each block runs in its own process group, which is killed when the block ends, so a server a
//! block started in the background never outlives it (even when the block fails half-way).

#![cfg(unix)]

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One command block of the README.
struct Block {
    /// The line of its opening fence (1-based).
    line: usize,
    script: String,
    /// Why it is not run, when the README says so.
    skip: Option<String>,
}

const SKIP: &str = "<!-- readme-test: skip:";

fn blocks(readme: &str) -> Vec<Block> {
    let lines: Vec<&str> = readme.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let fence = lines[i].trim_end();
        if !fence.starts_with("```") || fence.len() == 3 {
            i += 1;
            continue;
        }
        let lang = fence.trim_start_matches('`').trim();
        let start = i;
        let mut body = Vec::new();
        i += 1;
        while i < lines.len() && lines[i].trim_end() != "```" {
            body.push(lines[i]);
            i += 1;
        }
        assert!(
            i < lines.len(),
            "README.md:{}: unclosed code block",
            start + 1
        );
        i += 1;
        if lang != "sh" {
            continue;
        }
        let skip = start
            .checked_sub(1)
            .map(|p| lines[p].trim())
            .filter(|l| l.starts_with(SKIP))
            .map(|l| {
                let reason = l[SKIP.len()..].trim_end_matches("-->").trim().to_string();
                assert!(
                    !reason.is_empty(),
                    "README.md:{}: a skipped block must say why",
                    start + 1
                );
                reason
            });
        out.push(Block {
            line: start + 1,
            script: body.join("\n"),
            skip,
        });
    }
    out
}

/// Runs `script` with bash (`-euo pipefail`) in `dir`, in its own process group, killing the
/// group when the script ends or after `limit`; panics with the block's place and output if it
/// fails. Output goes to files, so a background process holding it cannot stall the test.
fn run(block: &Block, dir: &Path, path: &str, limit: Duration) {
    let logs = tempfile::tempdir().unwrap();
    let (out_path, err_path) = (logs.path().join("out"), logs.path().join("err"));
    let mut command = Command::new("bash");
    command
        .args(["-euo", "pipefail", "-c", &block.script])
        .current_dir(dir)
        .env("PATH", path)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .process_group(0);
    // The reader's environment must not change what the README does.
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("SLIPWAY_") {
            command.env_remove(name);
        }
    }
    let mut child = command.spawn().expect("bash runs");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if start.elapsed() > limit {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // Whatever the block left running (a server started with `&`) goes with it.
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .stderr(Stdio::null())
        .status();
    let _ = child.wait();
    let tail = |path: &Path| {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    };
    match status {
        Some(s) if s.success() => eprintln!(
            "README.md:{}: ok in {:.1} s",
            block.line,
            start.elapsed().as_secs_f64()
        ),
        other => panic!(
            "README.md:{}: the block {}:\n{}\n--- stdout (last lines)\n{}\n--- stderr (last lines)\n{}",
            block.line,
            match other {
                Some(s) => format!("failed ({s})"),
                None => format!("did not finish in {limit:?}"),
            },
            block.script,
            tail(&out_path),
            tail(&err_path),
        ),
    }
}

#[test]
fn the_readme_runs_in_order_from_a_fresh_folder() {
    let repo = slipway_testkit::repo();
    let readme = std::fs::read_to_string(repo.join("README.md")).unwrap();
    let blocks = blocks(&readme);
    assert!(
        blocks.iter().filter(|b| b.skip.is_none()).count() >= 5,
        "the README has fewer runnable blocks than expected: is the fence syntax right?"
    );
    let dir = tempfile::tempdir().unwrap();
    for shared in ["data", "conformance"] {
        std::os::unix::fs::symlink(repo.join(shared), dir.path().join(shared)).unwrap();
    }
    let bin: PathBuf = Path::new(env!("CARGO_BIN_EXE_slipway"))
        .parent()
        .unwrap()
        .to_path_buf();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for block in &blocks {
        match &block.skip {
            Some(reason) => eprintln!("README.md:{}: not run: {reason}", block.line),
            None => run(block, dir.path(), &path, Duration::from_secs(600)),
        }
    }
}

#[test]
fn blocks_are_found_and_skips_need_a_reason() {
    let text = "x\n```sh\necho one\n```\n<!-- readme-test: skip: needs docker -->\n```sh\ndocker ps\n```\n```toml\na = 1\n```\n";
    let b = blocks(text);
    assert_eq!(b.len(), 2);
    assert_eq!((b[0].line, b[0].script.as_str()), (2, "echo one"));
    assert_eq!(b[0].skip, None);
    assert_eq!(b[1].skip.as_deref(), Some("needs docker"));
    let bad = std::panic::catch_unwind(|| blocks("<!-- readme-test: skip: -->\n```sh\nls\n```\n"));
    assert!(bad.is_err());
}
