/* sample.h: what `zrt sample`'s files share: cmd_sample.c (flags, the
 * generation loop, streamed output) and sample_model.c (the model's config
 * and weights from a checkpoint or a Hugging Face directory, its EOS).
 * Private to tools/. */
#ifndef ZRT_TOOLS_SAMPLE_H
#define ZRT_TOOLS_SAMPLE_H

#include "zrt.h"

#include <limits.h>

#define ZRT_SAMPLE_MAX_EOS 8

/* Where a model comes from: its config (cfg.job.model, validated), and
 * either a checkpoint (any world size and stage) or cfg.job.model.init_from
 * (a Hugging Face directory) for its weights. */
typedef struct {
    zrt_config cfg;
    zrt_ckpt *ckpt;                    /* --checkpoint; NULL for --hf */
    char tokenizer[PATH_MAX + 32];     /* --hf: DIR/tokenizer.json when it exists, else "" */
    int32_t eos[ZRT_SAMPLE_MAX_EOS];   /* --hf: generation_config.json's (else config.json's) eos_token_id */
    int n_eos;
} zrt_sample_source;

/* One of checkpoint, hf (the other NULL). ZRT_ERR_IO / ZRT_ERR_CONFIG naming
 * the file and what is wrong (a missing or damaged checkpoint, a config.json
 * of a model type zrt has no model for). close accepts a zeroed s. */
zrt_status zrt_sample_source_open(const char *checkpoint, const char *hf, zrt_sample_source *s);
void zrt_sample_source_close(zrt_sample_source *s);
/* Device buffers units[m->n_units] (allocated here; the caller frees them
 * with zrt_device_free) holding each unit's full flat fp32 parameters from
 * s: a checkpoint's master weights, or init_from's. ZRT_ERR_CONFIG when the
 * checkpoint's units or the files' tensors do not fit the model. */
zrt_status zrt_sample_upload(const zrt_sample_source *s, zrt_model *m, float **units);

/* The prompt's ids framed as the tokenizer's post-processor frames a text
 * (its TemplateProcessing's "single": e.g. Llama's BOS before it), as
 * transformers' tokenizer(text) returns them; unchanged when there is none.
 * *lead: how many special ids now come before the text's. tokenizer: the
 * tokenizer.json's path. ZRT_ERR_CONFIG for a template naming a special
 * token it does not list. */
zrt_status zrt_sample_frame(const char *tokenizer, zrt_ids *ids, size_t *lead);

#endif
