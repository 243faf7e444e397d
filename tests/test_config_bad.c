/* test_config_bad.c: a catalogue of bad configs, each refused with its own message.
 *
 * For every case the file(s) are written to $TMPDIR, then:
 *  1. zrt_config_load() returns ZRT_ERR_CONFIG, the message contains the
 *     expected text (file, dotted key, value, what was expected), and the
 *     struct is back at the defaults (never a partly loaded config);
 *  2. `zrt config check FILE` exits 1 and prints the same text.
 */
#include "check.h"
#include "run_cmd.h"
#include "zrt.h"

#include <sys/wait.h>

typedef struct {
    const char *name;     /* file name; its extension picks the format */
    const char *text;     /* NULL: the file is not written (missing) */
    size_t len;           /* 0: strlen(text) */
    const char *expected; /* substring of the error */
    const char *name2, *text2; /* an optional second file (deepspeed_config_file) */
} bad_case;

#define DS "distributed_type: DEEPSPEED\n"

static const bad_case cases[] = {
    {"stage4.yaml", DS "deepspeed_config:\n  zero_stage: 4\n", 0,
     "stage4.yaml: deepspeed_config.zero_stage: 4 is not one of 0, 1, 2, 3"},
    {"stage5.json", "{\"zero_optimization\": {\"stage\": 5}}", 0,
     "stage5.json: zero_optimization.stage: 5 is not one of 0, 1, 2, 3"},
    {"stage_word.json", "{\"zero_optimization\": {\"stage\": \"three\"}}", 0,
     "zero_optimization.stage: three is not one of 0, 1, 2, 3"},
    {"procs_word.yaml", "num_processes: two\n", 0, "procs_word.yaml: num_processes: two is not an integer"},
    {"procs_float.yaml", "num_processes: 2.5\n", 0, "num_processes: 2.5 is not an integer"},
    {"bool_word.yaml", "use_cpu: maybe\n", 0, "use_cpu: maybe is not a boolean (true or false)"},
    {"bool_number.json", "{\"zero_optimization\": {\"overlap_comm\": 3}}", 0,
     "zero_optimization.overlap_comm: 3 is not a boolean"},
    {"precision_fp8.yaml", "mixed_precision: fp8\n", 0, "mixed_precision: fp8 is not one of no, fp16, bf16"},
    {"offload_gpu.yaml", DS "deepspeed_config:\n  offload_optimizer_device: gpu\n", 0,
     "deepspeed_config.offload_optimizer_device: gpu is not one of none, cpu, nvme"},
    {"fsdp.yaml", "distributed_type: FSDP\n", 0,
     "distributed_type: FSDP is not one of NO, MULTI_CPU, MULTI_GPU, DEEPSPEED"},
    {"optimizer_lamb.json", "{\"optimizer\": {\"type\": \"Lamb\"}}", 0,
     "optimizer.type: Lamb is not one of AdamW, Adam"},
    {"procs_zero.yaml", "num_processes: 0\n", 0,
     "num_processes: 0 is out of range (expected between 1 and 1048576)"},
    {"machines_negative.yaml", "num_machines: -1\n", 0, "num_machines: -1 is out of range"},
    {"port_big.yaml", "main_process_port: 70000\n", 0,
     "main_process_port: 70000 is out of range (expected between 0 and 65535)"},
    {"bucket_zero.json", "{\"zero_optimization\": {\"reduce_bucket_size\": 0}}", 0,
     "zero_optimization.reduce_bucket_size: 0 is out of range (expected >= 1)"},
    {"subgroup_negative.json", "{\"zero_optimization\": {\"sub_group_size\": -5}}", 0,
     "zero_optimization.sub_group_size: -5 is out of range"},
    {"steps_zero.yaml", "zrt:\n  steps: 0\n", 0, "zrt.steps: 0 is out of range (expected >= 1)"},
    {"nvme_no_path.yaml", DS "deepspeed_config:\n  zero_stage: 2\n  offload_optimizer_device: nvme\n", 0,
     "zero_optimization.offload_optimizer.nvme_path: is required when offload_optimizer.device is nvme"},
    {"nvme_param_no_path.json",
     "{\"zero_optimization\": {\"stage\": 3, \"offload_param\": {\"device\": \"nvme\"}}}", 0,
     "nvme_param_no_path.json: zero_optimization.offload_param.nvme_path: is required"},
    {"param_offload_stage2.json",
     "{\"zero_optimization\": {\"stage\": 2, \"offload_param\": {\"device\": \"cpu\"}}}", 0,
     "zero_optimization.offload_param.device: cpu needs zero stage 3 (the stage is 2)"},
    {"procs_indivisible.yaml", "num_processes: 3\nnum_machines: 2\nmain_process_ip: 10.1.2.3\n", 0,
     "num_processes: 3 is not divisible by num_machines 2"},
    {"rank_too_big.yaml", "num_processes: 4\nnum_machines: 2\nmachine_rank: 2\nmain_process_ip: h\n", 0,
     "machine_rank: 2 must be below num_machines 2"},
    {"no_main_ip.yaml", "num_processes: 4\nnum_machines: 2\n", 0,
     "main_process_ip: is required when num_machines is 2"},
    {"batch_inconsistent.json",
     "{\"train_batch_size\": 30, \"train_micro_batch_size_per_gpu\": 4, \"gradient_accumulation_steps\": 2}", 0,
     "train_batch_size: 30 != train_micro_batch_size_per_gpu 4 * gradient_accumulation_steps 2 * world size 1"},
    {"batch_world.yaml", "num_processes: 3\ndeepspeed_config:\n  deepspeed_config_file: world_ds.json\n", 0,
     "world_ds.json: train_batch_size: 64 != train_micro_batch_size_per_gpu 32 * gradient_accumulation_steps 1 * world "
     "size 3", "world_ds.json",
     "{\"train_batch_size\": 64, \"train_micro_batch_size_per_gpu\": 32, \"gradient_accumulation_steps\": 1}"},
    {"batch_indivisible.json", "{\"train_batch_size\": 10, \"train_micro_batch_size_per_gpu\": 4}", 0,
     "train_batch_size: 10 is not divisible by train_micro_batch_size_per_gpu 4 * world size 1"},
    {"dsfile_dup.yaml", DS "deepspeed_config:\n  deepspeed_config_file: dup_ds.json\n  zero_stage: 3\n", 0,
     "dsfile_dup.yaml: deepspeed_config.zero_stage: is set here and deepspeed_config_file", "dup_ds.json",
     "{\"zero_optimization\": {\"stage\": 3}}"},
    {"dsfile_precision.yaml",
     DS "mixed_precision: bf16\ndeepspeed_config:\n  deepspeed_config_file: prec_ds.json\n", 0,
     "mixed_precision: bf16 disagrees with", "prec_ds.json", "{\"fp16\": {\"enabled\": true}}"},
    {"dsfile_missing.yaml", DS "deepspeed_config:\n  deepspeed_config_file: nope.json\n", 0,
     "nope.json: cannot open: No such file or directory"},
    {"dsfile_bad_value.yaml", DS "deepspeed_config:\n  deepspeed_config_file: badval_ds.json\n", 0,
     "badval_ds.json: zero_optimization.stage: 9 is not one of", "badval_ds.json",
     "{\"zero_optimization\": {\"stage\": 9}}"},
    {"missing.yaml", NULL, 0, "missing.yaml: cannot open: No such file or directory"},
    {"truncated.json", "{\"zero_optimization\": {\"stage\": 2", 0,
     "truncated.json:1:34: JSON syntax error: unexpected end of file"},
    {"trailing.json", "{\"a\": 1} x", 0, "trailing.json:1:10: JSON syntax error near 'x'"},
    {"broken.yaml", "deepspeed_config:\n  zero_stage: [1\nnum_processes: 2\n", 0, "broken.yaml:3:14: YAML syntax error: did not find expected ',' or ']'"},
    {"yaml_list_for_map.yaml", DS "deepspeed_config:\n  - zero_stage\n", 0,
     "deepspeed_config: expected a map of keys, got a list"},
    {"json_list_for_map.json", "{\"zero_optimization\": [1, 2]}", 0,
     "zero_optimization: expected a map of keys, got a list"},
    {"top_list.yaml", "- a\n- b\n", 0, "top_list.yaml: expected a map of keys at the top level, got a list"},
    {"overflow.json", "{\"zero_optimization\": {\"reduce_bucket_size\": 99999999999999999999}}", 0,
     "zero_optimization.reduce_bucket_size: 1e+20 is not a 64-bit integer (it overflows)"},
    {"overflow.yaml", "zrt:\n  steps: 99999999999999999999\n", 0,
     "zrt.steps: 99999999999999999999 is not a 64-bit integer (it overflows)"},
    {"utf8.yaml", "compute_environment: LOCAL\xff\n", 0, "utf8.yaml:1:27: invalid UTF-8 (byte 0xff)"},
    {"utf8.json", "{\n \"a\": \"\xc3\x28\"\n}", 0, "utf8.json:2:8: invalid UTF-8 (byte 0xc3)"},
    {"nul.yaml", "num_processes: 2\n\0\n", 19, "nul.yaml:2:1: NUL byte in a text file"},
    {"empty.yaml", "", 0, "empty.yaml: the file is empty"},
    {"unknown_zero_key.json", "{\"zero_optimization\": {\"stgae\": 2}}", 0, "zero_optimization.stgae: unknown key"},
    {"unknown_zrt_key.yaml", "zrt:\n  stpes: 10\n", 0, "zrt.stpes: unknown key"},
    {"unsupported.json", "{\"zero_optimization\": {\"zero_quantized_weights\": true}}", 0,
     "zero_optimization.zero_quantized_weights: is a DeepSpeed option that zrt does not support"},
    {"fp16_and_bf16.json", "{\"fp16\": {\"enabled\": true}, \"bf16\": {\"enabled\": true}}", 0,
     "fp16.enabled: and bf16.enabled are both true"},
    {"betas_short.json", "{\"optimizer\": {\"params\": {\"betas\": [0.9]}}}", 0,
     "optimizer.params.betas: a list is not a list of two numbers"},
    {"duplicate.yaml", "num_processes: 2\nnum_processes: 3\n", 0, "duplicate.yaml: num_processes: duplicate key"},
    {"alias.yaml", "main_process_ip: &ip host\ndeepspeed_hostfile: *ip\n", 0,
     "alias.yaml:2:21: YAML aliases (*name) are not supported"},
    {"heartbeat.yaml", "zrt:\n  heartbeat_interval_s: 2\n  heartbeat_timeout_s: 1\n", 0,
     "zrt.heartbeat_timeout_s: 1 must be longer than heartbeat_interval_s 2"},
    {"gpt_heads.yaml", "zrt:\n  model: {type: gpt, d_model: 30, heads: 4}\n", 0,
     "zrt.model.d_model: 30 is not divisible by zrt.model.heads 4"},
    {"text_no_path.yaml", "zrt:\n  data: {type: text}\n", 0, "zrt.data.path: is required when zrt.data.type is text"},
    {"gpu_ids.yaml", "gpu_ids: first\n", 0, "gpu_ids: \"first\" is not \"all\" or a list like \"0,1\""},
    /* What the start of training refused, and settings parsed but not honoured (#24). */
    {"gpu_ids_list.yaml", "gpu_ids: 0,1\n", 0, "gpu_ids_list.yaml: gpu_ids: \"0,1\": zrt does not restrict"},
    {"ratio.json", "{\"zero_optimization\": {\"stage\": 2, \"offload_optimizer\": {\"device\": \"cpu\", \"ratio\": 0.5}}}",
     0, "ratio.json: zero_optimization.offload_optimizer.ratio: 0.5 asks for partial offload, which zrt does not implement"},
    {"param_only.json", "{\"zero_optimization\": {\"stage\": 3, \"offload_param\": {\"device\": \"cpu\"}}}", 0,
     "param_only.json: zero_optimization.offload_param.device: cpu needs offload_optimizer.device cpu or nvme"},
    {"text_missing.yaml", "zrt:\n  model: {type: gpt, d_model: 16, heads: 2, vocab: 256}\n"
     "  data: {type: text, path: /nonexistent/corpus.txt}\n", 0,
     "text_missing.yaml: zrt.data.path: /nonexistent/corpus.txt: No such file or directory"},
    {"text_vocab.yaml", "zrt:\n  model: {type: gpt, d_model: 16, heads: 2, vocab: 64}\n  data: {type: text, path: /dev/null}\n",
     0, "text_vocab.yaml: zrt.model.vocab: 64 is too small for text data"},
    {"text_short.yaml", "zrt:\n  model: {type: gpt, d_model: 16, heads: 2, vocab: 256}\n  data: {type: text, path: /dev/null}\n",
     0, "text_short.yaml: zrt.data.path: /dev/null has 0 bytes; zrt.model.seq_len 32 needs at least 34"},
    {"text_mlp.yaml", "zrt:\n  data: {type: text, path: /dev/null}\n", 0,
     "text_mlp.yaml: zrt.data.type: text needs zrt.model.type gpt"},
    {"init_missing.yaml", "zrt:\n  model: {type: gpt, d_model: 16, heads: 2, init_from: /nonexistent/gpt2}\n", 0,
     "init_missing.yaml: zrt.model.init_from: /nonexistent/gpt2: No such file or directory"},
    {"beside.yaml", DS, 0, "beside.zrt.yaml: zrt.data.path: /nonexistent/c.txt: No such file", "beside.zrt.yaml",
     "model: {type: gpt, d_model: 16, heads: 2, vocab: 256}\ndata: {type: text, path: /nonexistent/c.txt}\n"},
    {"settings.zrt.yaml", "steps: 5\n", 0,
     "settings.zrt.yaml: this is zrt's settings file for"},
    {"long_ip.yaml",
     "main_process_ip: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n", 0,
     "main_process_ip: a string of 154 bytes is longer than the limit of 127"},
};
#define N_CASES (sizeof cases / sizeof cases[0])

/* Runs `zrt config check path`; returns its exit status and output. */

int main(void)
{
    const char *dir = test_tmpdir();
    zrt_config defaults;
    zrt_config_init(&defaults);
    static zrt_config cfg;
    for (size_t i = 0; i < N_CASES; i++) {
        const bad_case *c = &cases[i];
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, c->name);
        if (c->text) test_write_file(dir, c->name, c->text, c->len ? c->len : strlen(c->text));
        if (c->name2) test_write_file(dir, c->name2, c->text2, strlen(c->text2));

        zrt_status status = zrt_config_load(&cfg, path);
        CHECK_MSG(status == ZRT_ERR_CONFIG, "%s: status %d", c->name, status);
        CHECK_MSG(strstr(zrt_last_error(), c->expected) != NULL, "%s:\n  expected: %s\n  got:      %s", c->name,
                  c->expected, zrt_last_error());
        CHECK_MSG(memcmp(&cfg, &defaults, sizeof cfg) == 0, "%s: config not reset after the error", c->name);

        char out[8192];
        int rc = run_config_check(path, out, sizeof out);
        CHECK_MSG(rc == 1, "%s: zrt config check exited %d", c->name, rc);
        CHECK_MSG(strstr(out, c->expected) != NULL, "%s: CLI output lacks '%s':\n%s", c->name, c->expected, out);
    }
    CHECK_MSG(N_CASES >= 30, "the catalogue has %zu cases", N_CASES);
    CHECK(zrt_config_load(NULL, "x.yaml") == ZRT_ERR_INVALID);
    CHECK(zrt_config_load(&cfg, NULL) == ZRT_ERR_INVALID);
    printf("%zu bad configs refused\n", N_CASES);
    return CHECK_DONE();
}
