/* schedule.c: DeepSpeed's LR schedulers and its dynamic loss scaler.
 *
 * Why copied formula for formula: users compare zrt's runs with DeepSpeed's;
 * the same config must give the same learning rate and the same skipped
 * steps (deepspeed/runtime/lr_schedules.py, fp16/loss_scaler.py).
 */
#include "zrt.h"

#include <math.h>

/* Warm-up progress in [0, 1] at step (log or linear), as WarmupLR has it. */
static double warmup_gamma(const zrt_scheduler_config *s, int64_t step)
{
    if (step >= s->warmup_num_steps) return 1.0;
    if (s->warmup_type == ZRT_WARMUP_LINEAR) return (double)step / (double)s->warmup_num_steps;
    double steps = s->warmup_num_steps > 1 ? (double)s->warmup_num_steps : 2.0;
    return log((double)step + 1.0) / log(steps);
}

double zrt_schedule_lr(const zrt_config *cfg, int64_t step)
{
    const zrt_scheduler_config *s = &cfg->scheduler;
    int64_t total = s->total_num_steps > 0 ? s->total_num_steps : cfg->job.steps;
    double delta = s->warmup_max_lr - s->warmup_min_lr;
    switch (s->type) {
    case ZRT_SCHED_NONE: return cfg->optimizer.lr;
    case ZRT_SCHED_WARMUP_LR: return s->warmup_min_lr + delta * warmup_gamma(s, step);
    case ZRT_SCHED_WARMUP_DECAY_LR: {
        if (step < s->warmup_num_steps) return s->warmup_min_lr + delta * warmup_gamma(s, step);
        double span = (double)(total - s->warmup_num_steps);
        double gamma = fmax(0.0, (double)(total - step) / fmax(1.0, span));
        return s->warmup_min_lr + delta * gamma;
    }
    case ZRT_SCHED_WARMUP_COSINE_LR: {
        double ratio;
        if (step < s->warmup_num_steps) {
            ratio = s->warmup_min_ratio + warmup_gamma(s, step) * (1.0 - s->warmup_min_ratio);
        } else {
            double done = (double)(step - s->warmup_num_steps + 1), span = (double)(total - s->warmup_num_steps);
            double cosine = (1.0 + cos(3.141592653589793 * done / fmax(1.0, span))) / 2.0;
            ratio = fmax(0.0, s->cos_min_ratio + (1.0 - s->cos_min_ratio) * cosine);
        }
        return cfg->optimizer.lr * ratio;
    }
    }
    return cfg->optimizer.lr;
}

void zrt_loss_scaler_init(zrt_loss_scaler *s, const zrt_config *cfg)
{
    bool fp16 = cfg->mixed_precision == ZRT_PRECISION_FP16;
    s->dynamic = fp16 && cfg->fp16.loss_scale == 0;
    s->scale = !fp16 ? 1.0 : s->dynamic ? ldexp(1.0, (int)cfg->fp16.initial_scale_power) : cfg->fp16.loss_scale;
    s->hysteresis_left = cfg->fp16.hysteresis;
    s->last_overflow_step = -1;
    s->step = 0;
}

void zrt_loss_scaler_update(zrt_loss_scaler *s, const zrt_config *cfg, bool overflow)
{
    if (!s->dynamic) {
        s->step++;
        return;
    }
    if (overflow) {
        if (cfg->fp16.hysteresis == 1 || s->hysteresis_left == 1) s->scale = fmax(s->scale / 2, cfg->fp16.min_loss_scale);
        else s->hysteresis_left--;
        s->last_overflow_step = s->step;
    } else if ((s->step - s->last_overflow_step) % cfg->fp16.loss_scale_window == 0) {
        s->hysteresis_left = cfg->fp16.hysteresis;
        s->scale *= 2;
    }
    s->step++;
}
