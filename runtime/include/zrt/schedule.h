/* zrt/schedule.h: DeepSpeed's learning-rate schedulers and its dynamic loss
 * scaler, as pure functions of the config and the step. */
#ifndef ZRT_SCHEDULE_H
#define ZRT_SCHEDULE_H

#include "zrt/base.h"
#include "zrt/config.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- schedule and loss scale ---------------------------------------------------------- */

/* The learning rate of step (from 0), DeepSpeed's schedulers. */
double zrt_schedule_lr(const zrt_config *cfg, int64_t step);

typedef struct {
    double scale;
    int64_t hysteresis_left;
    int64_t last_overflow_step;
    int64_t step;
    bool dynamic;
} zrt_loss_scaler;

void zrt_loss_scaler_init(zrt_loss_scaler *s, const zrt_config *cfg);
/* DeepSpeed's DynamicLossScaler.update_scale. */
void zrt_loss_scaler_update(zrt_loss_scaler *s, const zrt_config *cfg, bool overflow);

#ifdef __cplusplus
}
#endif
#endif
