//! Randomized damage, git-surgery against git-repair (Debian's), in the same run: each trial
//! damages two copies of the test repository (tests/fixtures/surgery-base.sh, with a healthy
//! remote) the same way (benches/common/damage.rs: git-repair's damage kinds, one to three at
//! once), runs `git surgery repair` on one and `git-repair` on the other, and judges each by
//! its exit status, `git fsck --full --strict` and the refs afterwards.
//!
//! Goals (issue 13): 0 false successes and 0 crashes for git-surgery, and more trials healed
//! than git-repair heals. Run: `cargo bench --bench damagebench` (BENCH_TRIALS=1000 by
//! default, BENCH_SEED=1 the first seed; git-repair missing: git-surgery alone).

mod common;
#[path = "common/damage.rs"]
mod damage;

use common::{Row, env_n, loadavg, print_table};
use damage::{Rng, Verdict};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

fn run(cmd: &mut Command) -> std::process::ExitStatus {
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("command runs")
}

/// A copy of the template's repository and remote in `dir`, the remote URL pointing at the copy.
fn copy(template: &Path, dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).expect("mkdir");
    assert!(
        run(Command::new("cp")
            .arg("-a")
            .arg(template.join("repo"))
            .arg(template.join("remote.git"))
            .arg(dir))
        .success()
    );
    let repo = dir.join("repo");
    assert!(
        run(Command::new("git").arg("-C").arg(&repo).args([
            "remote",
            "set-url",
            "origin",
            dir.join("remote.git").to_str().expect("utf-8"),
        ]))
        .success()
    );
    repo
}

fn main() {
    let load0 = loadavg();
    let trials = env_n("BENCH_TRIALS", 1000);
    let seed0 = env_n("BENCH_SEED", 1);
    let tmp = tempfile::tempdir().expect("tmp");
    let template = tmp.path().join("template");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/surgery-base.sh");
    assert!(
        run(Command::new("bash")
            .arg(&script)
            .arg(template.join("repo"))
            .arg(template.join("remote.git")))
        .success()
    );
    let surgery = PathBuf::from(env!("CARGO_BIN_EXE_git-surgery"));
    // BENCH_NO_PEER=1: git-surgery alone (quick runs while working on it).
    let have_git_repair = env_n("BENCH_NO_PEER", 0) == 0
        && Command::new("git-repair")
            .arg("--help")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
    let mut tally: BTreeMap<(&str, Verdict), u64> = BTreeMap::new();
    let mut time: BTreeMap<&str, f64> = BTreeMap::new();
    let mut false_successes = Vec::new();
    for seed in seed0..seed0 + trials {
        let dir = tmp.path().join(format!("t{seed}"));
        let a = copy(&template, &dir.join("a"));
        let before = damage::refs_of(&a);
        let what = damage::damage(&a.join(".git"), &mut Rng::new(seed));
        let before = damage::with_reflogs_left(&before, &a);
        let t = Instant::now();
        let st = run(Command::new(&surgery).arg("-C").arg(&a).arg("repair"));
        *time.entry("git-surgery").or_default() += t.elapsed().as_secs_f64();
        let v = damage::judge(st, &a, &before);
        if matches!(v, Verdict::FalseSuccess | Verdict::Crashed) {
            false_successes.push(format!("seed {seed}: {what:?} -> {v:?}"));
        }
        *tally.entry(("git-surgery", v)).or_default() += 1;
        if have_git_repair {
            let b = copy(&template, &dir.join("b"));
            let _ = damage::damage(&b.join(".git"), &mut Rng::new(seed));
            let t = Instant::now();
            let st = run(Command::new("git-repair").current_dir(&b));
            *time.entry("git-repair").or_default() += t.elapsed().as_secs_f64();
            *tally
                .entry(("git-repair", damage::judge(st, &b, &before)))
                .or_default() += 1;
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    let tools: Vec<&str> = if have_git_repair {
        vec!["git-surgery", "git-repair"]
    } else {
        vec!["git-surgery"]
    };
    let count = |tool: &str, v: Verdict| tally.get(&(tool, v)).copied().unwrap_or(0);
    let rows: Vec<Row> = tools
        .iter()
        .map(|t| Row {
            name: (*t).to_string(),
            cols: vec![
                count(t, Verdict::Healed).to_string(),
                count(t, Verdict::HealedButUntraceableRefLost).to_string(),
                count(t, Verdict::Failed).to_string(),
                count(t, Verdict::FalseSuccess).to_string(),
                count(t, Verdict::Crashed).to_string(),
                format!(
                    "{:.0}",
                    time.get(t).copied().unwrap_or(0.0) * 1000.0 / trials as f64
                ),
            ],
        })
        .collect();
    print_table(
        &format!(
            "{trials} randomized damage trials from seed {seed0} (loadavg {load0} → {})",
            loadavg()
        ),
        &[
            "tool",
            "healed",
            "healed, untraceable ref lost",
            "said damage remains",
            "false success",
            "crashed",
            "ms per trial",
        ],
        &rows,
    );
    for f in &false_successes {
        println!("{f}");
    }
    let gr_healed = if have_git_repair {
        count("git-repair", Verdict::Healed).to_string()
    } else {
        "n/a".into()
    };
    println!(
        "\nRESULT trials={trials} surgery_healed={} surgery_false_success={} surgery_crashed={} git_repair_healed={gr_healed} loadavg={}",
        count("git-surgery", Verdict::Healed),
        count("git-surgery", Verdict::FalseSuccess),
        count("git-surgery", Verdict::Crashed),
        loadavg()
    );
}
