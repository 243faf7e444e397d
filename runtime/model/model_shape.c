/* model_shape.c: what every built-in model's declaration uses -- the unit
 * and parameter tables (zrt_model_tables_alloc), a parameter's entry
 * (zrt_model_add_param) -- and the op checks of the runner (nn_model.c).
 * Each model declares its own units, parameters and activations in its own
 * file (gpt.c, mlp.c), so that adding a model is that file and a row in
 * model.c.
 */
#include "model_internal.h"

#include <stdio.h>
#include <stdlib.h>

zrt_status zrt_model_tables_alloc(zrt_model *m, int n_units, int max_params, int n_ops)
{
    if (n_units < 1 || n_units > ZRT_MAX_UNITS || max_params < 1 || max_params > ZRT_MAX_UNIT_PARAMS || n_ops < 1 ||
        n_ops > ZRT_MAX_OPS)
        return zrt_set_error(ZRT_ERR_INVALID, "model: %d units of %d parameters, %d ops (limits %d, %d, %d)", n_units,
                             max_params, n_ops, ZRT_MAX_UNITS, ZRT_MAX_UNIT_PARAMS, ZRT_MAX_OPS);
    size_t n = (size_t)n_units;
    /* One block, most aligned first: infos, row pointers, numels, then the ints. */
    size_t infos = n * (size_t)max_params * sizeof(zrt_param_info), rows = n * sizeof(zrt_param_info *);
    size_t numels = n * sizeof(int64_t), counts = n * sizeof(int);
    char *block = calloc(1, infos + rows + numels + counts + (size_t)n_ops * sizeof(int));
    if (!block) return zrt_set_error(ZRT_ERR_NOMEM, "model: out of memory for %d units' tables", n_units);
    m->params = (zrt_param_info **)(block + infos);
    for (int u = 0; u < n_units; u++) m->params[u] = (zrt_param_info *)block + (size_t)u * (size_t)max_params;
    m->unit_numel = (int64_t *)(block + infos + rows);
    m->n_params = (int *)(block + infos + rows + numels);
    m->op_unit = (int *)(block + infos + rows + numels + counts);
    m->n_units = n_units;
    m->n_ops = n_ops;
    return ZRT_OK;
}

void zrt_model_tables_free(zrt_model *m)
{
    if (!m || !m->params) return;
    free(m->params[0]); /* the block's start: its first row of infos */
    m->params = NULL, m->n_params = NULL, m->unit_numel = NULL, m->op_unit = NULL;
}

void zrt_model_add_param(zrt_model *m, int unit, const char *name, int64_t rows, int64_t cols, zrt_init_kind init,
                         float std)
{
    int i = m->n_params[unit]++;
    zrt_param_info *p = &m->params[unit][i];
    int64_t numel = rows * (cols ? cols : 1);
    *p = (zrt_param_info){.numel = numel, .offset = m->unit_numel[unit], .init = init, .init_std = std,
                          .ndim = cols ? 2 : 1, .shape = {rows, cols}};
    snprintf(p->name, sizeof p->name, "%s", name);
    m->unit_numel[unit] += numel;
}

/* ---- the runners' op checks ------------------------------------------------------------------- */

zrt_status zrt_model_check_op(const zrt_model *m, const void *inputs, int kind, int op, const float *params,
                              const float *grads)
{
    if (!inputs) return zrt_set_error(ZRT_ERR_INVALID, "model: no batch (set_batch first)");
    if (kind == 1) return ZRT_OK;
    if (op < 0 || op >= m->n_ops) return zrt_set_error(ZRT_ERR_INVALID, "model: op %d outside 0..%d", op, m->n_ops - 1);
    if (!params || (kind == 2 && !grads))
        return zrt_set_error(ZRT_ERR_INVALID, "model: op %d: NULL parameters or gradients", op);
    return ZRT_OK;
}
