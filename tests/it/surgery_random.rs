//! A fixed-seed slice of the randomized damage benchmark (benches/damagebench.rs, 1,000
//! trials against git-repair): on copies of the lab repository damaged in git-repair's ways,
//! `git surgery repair` may heal or may say that damage remains, but never says "healthy"
//! while `git fsck --full --strict` disagrees or a ref with a reflog is not what it was, and
//! never crashes. (A ref without a reflog whose file was deleted leaves no trace: counted
//! apart, as no tool can tell it from a deletion.)

#[path = "../../benches/common/damage.rs"]
mod damage;

use crate::surgery::Lab;
use damage::{Rng, Verdict};

const TRIALS: u64 = 24;

#[test]
fn random_damage_never_ends_in_a_false_healthy_or_a_crash() {
    let mut tally = std::collections::BTreeMap::new();
    for seed in 1..=TRIALS {
        let lab = Lab::new();
        let before = damage::refs_of(&lab.repo);
        let what = damage::damage(&lab.repo.join(".git"), &mut Rng::new(seed));
        let before = damage::with_reflogs_left(&before, &lab.repo);
        let o = lab.surgery(&["repair"]);
        let v = damage::judge(o.status, &lab.repo, &before);
        assert!(
            !matches!(v, Verdict::FalseSuccess | Verdict::Crashed),
            "seed {seed}: {what:?} → {v:?} (exit {:?})\n{}{}",
            o.status.code(),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        *tally.entry(format!("{v:?}")).or_insert(0) += 1;
    }
    eprintln!("{TRIALS} trials: {tally:?}");
    assert!(
        tally.get("Healed").copied().unwrap_or(0) > TRIALS / 2,
        "{tally:?}"
    );
}
