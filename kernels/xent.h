/* xent.h: the cross-entropy's one convention every model and kernel shares:
 * a label equal to ZRT_IGNORE_INDEX (-100, Hugging Face's) is no target --
 * its row adds nothing to the loss or the gradient, and the loss is the mean
 * over the rows that are targets (0 when none is). Supervised fine-tuning
 * marks prompt tokens so (docs/data.md: the shards' loss mask). */
#ifndef ZRT_KERNELS_XENT_H
#define ZRT_KERNELS_XENT_H

#define ZRT_IGNORE_INDEX (-100)

#endif
