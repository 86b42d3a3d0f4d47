//! Version 4's two ways of learning from outcomes, called from version 1's
//! threshold and precedent rules through `v1::Later`.

use crate::context::Precedent;
use crate::entity::EntityRef;
use crate::outcomes::measure;
use crate::resolver::v1::Eval;
use crate::rules::{CALIBRATION_SCALE_MAX_BP, RETIRE_AFTER_CASES_DEFAULT};
use crate::value::Value;
use crate::vocab::{Field, Finding, Read, RuleId, Verdict};

fn read(field: Field, entity: Option<EntityRef>, value: i64, seq: u64) -> Read {
    Read {
        field,
        entity,
        value: Value::Int(value),
        seq,
    }
}

/// The revenue impact the threshold rule compares: the intention's own,
/// scaled by its agent's forecast bias once enough decisions are measured.
pub(super) fn calibrate(e: &mut Eval<'_>, revenue: i64) -> i64 {
    let Some(rule) = e.rules.rules.calibration.as_ref() else {
        return revenue;
    };
    let min = rule.min_outcomes;
    let f = measure::forecast(&e.ctx.outcomes, &e.s.agent, e.ctx.now_ms);
    let min_read = read(
        Field::CalibrationMinOutcomes,
        None,
        i64::from(min),
        e.rules.seq,
    );
    let bias = f.bias_bp.filter(|_| f.measured >= u64::from(min));
    let Some(bias) = bias else {
        let finding = Finding::NotCalibrated {
            measured: f.measured,
            min_outcomes: min,
        };
        e.push(RuleId::Calibration, Verdict::Pass, finding, vec![min_read]);
        return revenue;
    };
    let scale = bias.clamp(0, CALIBRATION_SCALE_MAX_BP);
    // |revenue| ≤ IMPACT_MAX_MINOR (1e13) and scale ≤ 4e4: the product fits
    // in i128 and the quotient (at most 4e13) in i64.
    let scaled = i128::from(revenue) * i128::from(scale) / 10_000;
    let calibrated = i64::try_from(scaled).unwrap_or(revenue);
    debug_assert!(calibrated.unsigned_abs() <= revenue.unsigned_abs().saturating_mul(4));
    let agent = Some(EntityRef::Agent(e.s.agent.clone()));
    let reads = vec![
        min_read,
        read(Field::ForecastBiasBp, agent, bias, f.last_outcome),
    ];
    let finding = Finding::Calibrated {
        revenue_minor: revenue,
        calibrated_minor: calibrated,
        bias_bp: bias,
        scale_bp: scale,
        measured: f.measured,
    };
    e.push(RuleId::Calibration, Verdict::Pass, finding, reads);
    calibrated
}

/// Whether precedent `p` is retired by the outcomes of the cases it settled.
pub(super) fn retired(e: &mut Eval<'_>, p: &Precedent) -> bool {
    let rule = &e.rules.rules.precedent;
    let Some(worse_bp) = rule.retire_if_worse_bp else {
        return false;
    };
    let min = rule
        .retire_after_cases
        .unwrap_or(RETIRE_AFTER_CASES_DEFAULT);
    let r = measure::precedent(&e.ctx.outcomes, p.resolution, p.intention, e.ctx.now_ms);
    if !r.worse_by(worse_bp, u64::from(min)) {
        return false;
    }
    // worse_by holds only with both figures measured.
    let (original_bp, settled_bp) = (r.original_bp.unwrap_or(0), r.settled_bp.unwrap_or(0));
    let case = Some(EntityRef::Intention(p.intention));
    let reads = vec![
        read(Field::RetireIfWorseBp, None, worse_bp, e.rules.seq),
        read(
            Field::PrecedentQualityBp,
            case.clone(),
            original_bp,
            r.last_outcome,
        ),
        read(Field::SettledQualityBp, case, settled_bp, r.last_outcome),
    ];
    let finding = Finding::PrecedentRetired {
        resolution: p.resolution,
        original_bp,
        settled_bp,
        measured: r.measured,
        worse_bp,
    };
    e.push(RuleId::Precedent, Verdict::Pass, finding, reads);
    true
}
