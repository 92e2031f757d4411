"""Error lines that real fine-tuning runs print, copied from public issue threads (URL per case).

Each line sits in a minimal realistic context (a traceback ending in it, or a log line with its real
prefix) and goes through the whole pipeline (``analyze`` on a file). Issue #4: the catalogue is
also scored on real logs we do not have, so every signature is checked against the spellings that
several versions of torch, transformers, datasets, NCCL, DeepSpeed, flash-attn, bitsandbytes and
the launchers really print. A case may also name ids that must *not* be found (look-alikes).
"""

from __future__ import annotations

from typing import NamedTuple

import pytest

from logpost.analyze import Options, analyze


class Case(NamedTuple):
    id: str
    url: str
    text: str
    expect: str | None  # the signature that must be found (None: a pure hard negative)
    absent: tuple[str, ...] = ()  # signatures that must not be found


def tb(*exc: str, frames: tuple[tuple[str, int, str, str], ...] = (), prefix: str = "") -> str:
    """A Python traceback ending in the exception line(s) ``exc``, each line behind ``prefix``."""
    if not frames:
        frames = (("/opt/conda/lib/python3.10/site-packages/transformers/trainer.py", 1539, "train",
                   "return inner_training_loop("),)
    lines = ["Traceback (most recent call last):"]
    for path, no, func, src in frames:
        lines += [f'  File "{path}", line {no}, in {func}', f"    {src}"]
    lines += list(exc)
    return "\n".join(prefix + line for line in lines) + "\n"


# the eight signatures this file audits (issue #4)
MINE = ("CUDA_OOM", "HOST_OOM", "NCCL_ERROR", "DATASET_ERROR", "TOKENIZER_ERROR", "CONFIG_ERROR", "ENV_ERROR",
        "CHECKPOINT_ERROR")
TRAIN = "{'loss': 1.2043, 'grad_norm': 0.81, 'learning_rate': 1.9e-05, 'epoch': 0.12}\n"
FWD = (("/usr/local/lib/python3.10/dist-packages/torch/nn/modules/module.py", 1501, "_call_impl",
        "return forward_call(*args, **kwargs)"),)
LOAD = (("/usr/local/lib/python3.10/dist-packages/transformers/modeling_utils.py", 3594, "from_pretrained",
         "model = cls(config, *model_args, **model_kwargs)"),)
DIST = (("/usr/local/lib/python3.10/dist-packages/torch/distributed/distributed_c10d.py", 3696, "barrier",
         "work = default_pg.barrier(opts=opts)"),)
DATA = (("/usr/local/lib/python3.10/dist-packages/datasets/builder.py", 1997, "_prepare_split_single",
         "for _, table in generator:"),)
SAVE = (("/opt/conda/lib/python3.10/site-packages/transformers/trainer.py", 2468, "_save_checkpoint",
         "self.save_model(output_dir, _internal_call=True)"),)

CASES = [
    # ------------------------------------------------------------------------------------ CUDA_OOM
    Case("oom-torch25-new-wording", "https://github.com/antgroup/echomimic_v2/issues/115", TRAIN + tb(
        "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 4.22 GiB. GPU 0 has a total capacity of "
        "15.69 GiB of which 3.71 GiB is free. Including non-PyTorch memory, this process has 11.14 GiB memory in "
        "use. Of the allocated memory 10.14 GiB is allocated by PyTorch, and 771.43 MiB is reserved by PyTorch but "
        "unallocated. If reserved but unallocated memory is large try setting "
        "PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True to avoid fragmentation.  See documentation for Memory "
        "Management  (https://pytorch.org/docs/stable/notes/cuda.html#environment-variables)", frames=FWD),
         "CUDA_OOM", ("HOST_OOM",)),
    Case("oom-torch20-legacy-sizes", "https://github.com/liucongg/ChatGLM-Finetuning/issues/28", tb(
        "torch.cuda.OutOfMemoryError: CUDA out of memory. Tried to allocate 128.00 MiB (GPU 0; 44.99 GiB total "
        "capacity; 6.15 GiB already allocated; 37.32 GiB free; 6.15 GiB reserved in total by PyTorch) If reserved "
        "memory is >> allocated memory try setting max_split_size_mb to avoid fragmentation.  See documentation "
        "for Memory Management and PYTORCH_CUDA_ALLOC_CONF", frames=FWD), "CUDA_OOM"),
    Case("oom-runtimeerror-torch1x", "https://github.com/singhsourabh/Resume-NER/issues/4", tb(
        "RuntimeError: CUDA out of memory. Tried to allocate 92.00 MiB (GPU 0; 1.96 GiB total capacity; 1.46 GiB "
        "already allocated; 16.38 MiB free; 1.51 GiB reserved in total by PyTorch", frames=FWD), "CUDA_OOM"),
    Case("oom-capacty-typo-torch21", "https://github.com/carolchenyx/MGFN./issues/35", tb(
        "torch.cuda.OutOfMemoryError: CUDA out of memory. Tried to allocate 1.70 GiB. GPU 0 has a total capacty of "
        "6.00 GiB of which 0 bytes is free. Of the allocated memory 2.93 GiB is allocated by PyTorch, and 2.30 GiB "
        "is reserved by PyTorch but unallocated.", frames=FWD), "CUDA_OOM"),
    Case("oom-cuda-error-async", "https://github.com/deepspeedai/DeepSpeed/issues/3314", tb(
        "RuntimeError: CUDA error: out of memory",
        "CUDA kernel errors might be asynchronously reported at some other API call,so the stacktrace below might "
        "be incorrect.", "For debugging consider passing CUDA_LAUNCH_BLOCKING=1.", frames=LOAD), "CUDA_OOM"),
    Case("oom-accelerator-error-torch28", "https://github.com/deepbeepmeep/Wan2GP/issues/1083", tb(
        "torch.AcceleratorError: CUDA error: out of memory",
        "CUDA kernel errors might be asynchronously reported at some other API call, so the stacktrace below might "
        "be incorrect.", "For debugging consider passing CUDA_LAUNCH_BLOCKING=1",
        "Compile with `TORCH_USE_CUDA_DSA` to enable device-side assertions.", frames=FWD), "CUDA_OOM"),
    Case("oom-cublas-alloc-failed", "https://github.com/QwenLM/Qwen3/issues/873", tb(
        "RuntimeError: CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`",
        frames=(("lib/python3.9/site-packages/torch/nn/modules/linear.py", 116, "forward",
                 "return F.linear(input, self.weight, self.bias)"),)), "CUDA_OOM"),
    Case("oom-rank-prefixed", "https://github.com/NVIDIA/nccl/issues/1284", tb(
        "torch.cuda.OutOfMemoryError: CUDA out of memory. Tried to allocate more than 1EB memory.",
        frames=FWD, prefix="[rank3]: "), "CUDA_OOM"),
    Case("oom-logging-error-line", "https://github.com/mrhan1993/Fooocus-API/issues/213",
         "ERROR:root:CUDA error: out of memory CUDA kernel errors might be asynchronously reported at some other "
         "API call, so the stacktrace below might be incorrect.\n", "CUDA_OOM"),
    Case("oom-hip-rocm", "https://github.com/huggingface/autotrain-advanced/issues/737", tb(
        "torch.OutOfMemoryError: HIP out of memory. Tried to allocate 124.00 MiB. GPU 0 has a total capacity of 19.94 "
        "GiB of which 554.47 MiB is free. Of the allocated memory 15.87 GiB is allocated by PyTorch, and 165.29 MiB "
        "is reserved by PyTorch but unallocated. If reserved but unallocated memory is large try setting "
        "PYTORCH_HIP_ALLOC_CONF=expandable_segments:True to avoid fragmentation.", frames=FWD), "CUDA_OOM"),
    Case("oom-hip-loguru-error-line", "https://github.com/huggingface/autotrain-advanced/issues/737",
         "ERROR    | 2024-08-21 22:56:04 | autotrain.trainers.common:wrapper:121 - HIP out of memory. Tried to "
         "allocate 124.00 MiB. GPU 0 has a total capacity of 19.94 GiB of which 554.47 MiB is free. Of the allocated "
         "memory 15.87 GiB is allocated by PyTorch, and 165.29 MiB is reserved by PyTorch but unallocated.\n",
         "CUDA_OOM"),
    # an OOM handled by an error handler whose own traceback the paste cuts off: the chain keeps the family
    Case("oom-chained-then-cut", "https://github.com/deepbeepmeep/Wan2GP/issues/1083",
         "Traceback (most recent call last):\n  File \"C:\\Users\\dwoo\\Desktop\\Wan2GP\\wan2gp\\python_embeded\\lib\\site-packages\\torch\\nn\\functional.py\", "
         "line 2905, in layer_norm\n    return torch.layer_norm(\n"
         "torch.AcceleratorError: CUDA error: out of memory\n"
         "CUDA kernel errors might be asynchronously reported at some other API call, so the stacktrace below might "
         "be incorrect.\nFor debugging consider passing CUDA_LAUNCH_BLOCKING=1\n"
         "Compile with `TORCH_USE_CUDA_DSA` to enable device-side assertions.\n\n"
         "During handling of the above exception, another exception occurred:\n\n"
         "Traceback (most recent call last):\n"
         "  File \"C:\\Users\\dwoo\\Desktop\\Wan2GP\\wan2gp\\wgp.py\", line 6020, in generate_video_error_handler\n"
         "    generate_video(task, send_cmd, plugin_data=plugin_data,  **params)\n"
         "  File \"C:\\Users\\dwoo\\Desktop\\Wan2GP\\wan2gp\\python_embeded\\lib\\site-packages\\mmgp\\offload.py\", "
         "line 2064, in unload_all\n    torch.cuda.synchronize()\n", "CUDA_OOM"),
    # NCCL's own allocation failure is a warning from inside NCCL; the error it becomes is an NCCL error
    Case("nccl-warn-cuda-oom-not-cuda-oom", "https://github.com/NVIDIA/nccl/issues/1235",
         "ng30903:3063028:3066152 [3] include/alloc.h:178 NCCL WARN Cuda failure 'out of memory'\n"
         "ng30903:3063028:3066152 [3] include/alloc.h:185 NCCL WARN Failed to CUDA calloc 6291456 bytes\n"
         "ng30903:3063028:3066152 [3] NCCL INFO transport/p2p.cc:204 -> 1\n", None, ("CUDA_OOM",)),

    # ------------------------------------------------------------------------------------ HOST_OOM
    Case("torchrun-exitcode-9-old", "https://github.com/fidelity/stoke/issues/31",
         "WARNING:torch.distributed.elastic.multiprocessing.api:Sending process 10401 closing signal SIGTERM\n"
         "ERROR:torch.distributed.elastic.multiprocessing.api:failed (exitcode: -9) local_rank: 0 (pid: 10398) of "
         "binary: /anaconda/envs/py37_default/bin/python\n", "HOST_OOM", ("CUDA_OOM",)),
    Case("torchrun-exitcode-9-bracketed", "https://github.com/meta-llama/llama/issues/856",
         "[2023-10-13 17:40:02,544] torch.distributed.elastic.multiprocessing.api: [ERROR] failed (exitcode: -9) "
         "local_rank: 0 (pid: 62498) of binary: /home/znr/miniconda3/envs/llama/bin/python\n", "HOST_OOM"),
    Case("torchrun-exitcode-9-glog-torch25", "https://github.com/hiyouga/LlamaFactory/issues/6608",
         "site-packages/torch/distributed/elastic/multiprocessing/api.py:869] failed (exitcode: -9) local_rank: 0 "
         "(pid: 93043) of binary: /home/e/e1351134/miniconda3/envs/factory/bin/python\n", "HOST_OOM"),
    Case("deepspeed-return-code-9", "https://github.com/deepspeedai/DeepSpeed/issues/3232",
         "[2023-04-14 13:11:27,879] [INFO] [launch.py:428:sigkill_handler] Killing subprocess 13266\n"
         "[2023-04-14 13:11:27,885] [ERROR] [launch.py:434:sigkill_handler] ['/usr/bin/python3', '-u', 'main.py', "
         "'--local_rank=0', '--zero_stage', '2', '--deepspeed'] exits with return code = -9\n", "HOST_OOM"),
    Case("slurm-oom-kill-event", "https://github.com/nextflow-io/nextflow/issues/5932",
         "slurmstepd: error: Detected 1 oom_kill event in StepId=11300781.0. Some of the step tasks have been OOM "
         "Killed.\nsrun: error: sdumont6156: task 0: Out Of Memory\n", "HOST_OOM", ("CUDA_OOM",)),
    Case("cpu-allocator-cant-allocate", "https://github.com/hiyouga/LlamaFactory/issues/505", tb(
        "RuntimeError: [enforce fail at alloc_cpu.cpp:83] err == 0. DefaultCPUAllocator: can't allocate memory: "
        "you tried to allocate 104857600 bytes. Error code 12 (Cannot allocate memory)"), "HOST_OOM", ("CUDA_OOM",)),
    Case("cpu-allocator-bare", "https://github.com/zai-org/ChatGLM3/issues/382", tb(
        "RuntimeError: [enforce fail at alloc_cpu.cpp:83] err == 0. DefaultCPUAllocator: can't allocate memory",
        frames=(("/var/fpwork/anaconda3/envs/GLM/lib/python3.11/site-packages/torch/optim/adamw.py", 125,
                 "_init_group", 'state["exp_avg_sq"] = torch.zeros_like('),)), "HOST_OOM"),
    Case("cpu-allocator-not-enough", "https://github.com/Comfy-Org/Nvidia_RTX_Nodes_ComfyUI/issues/13", tb(
        "RuntimeError: [enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: not enough memory: you tried "
        "to allocate 31850496000 bytes."), "HOST_OOM"),
    Case("errno-12-cannot-allocate", "https://github.com/modelscope/FunASR/issues/1716", tb(
        "OSError: [Errno 12] Cannot allocate memory", prefix="[rank2]: "), "HOST_OOM", ("CUDA_OOM",)),
    Case("bash-job-killed-finetune-sh", "https://github.com/huggingface/transformers/issues/6665",
         "./finetune.sh: line 14:  9040 Killed                  python finetune.py --learning_rate=3e-5 --fp16 "
         "--gpus 1 --do_train --do_predict --n_val 1000 --val_check_interval 0.1 \"$@\"\n", "HOST_OOM"),
    Case("killed-glued-after-shard-bar", "https://github.com/PKU-YuanGroup/Video-LLaVA/issues/13",
         "Loading checkpoint shards:   0%|          | 0/2 [00:00<?, ?it/s]Killed\n", "HOST_OOM", ("CUDA_OOM",)),
    Case("zsh-job-killed-after-shard-bar", "https://github.com/baichuan-inc/Baichuan2/issues/138",
         "Loading checkpoint shards:   0%|                                                            | 0/3 "
         "[00:00<?, ?it/s][1]    26478 killed     python test.py\n", "HOST_OOM"),
    Case("zh-locale-killed", "https://github.com/crownpku/Somiao-Pinyin/issues/10",
         "  0%|                                        | 0/16733 [00:00<?, ?b/s]2019-11-05 15:38:21.301871: I "
         "tensorflow/stream_executor/dso_loader.cc:152] successfully opened CUDA library libcublas.so.10.0 locally\n"
         "已杀死\n", "HOST_OOM"),
    Case("dmesg-killed-process", "https://github.com/meta-llama/llama-cookbook/issues/556",
         "[Sun Jun  9 11:49:36 2024] Out of memory: Killed process 7815 (pt_main_thread) total-vm:45371652kB, "
         "anon-rss:31360488kB, file-rss:72116kB, shmem-rss:4kB, UID:1000 pgtables:64944kB oom_score_adj:0\n",
         "HOST_OOM", ("CUDA_OOM",)),
    Case("accelerate-died-with-sigkill", "https://github.com/huggingface/autotrain-advanced/issues/456",
         "Loading checkpoint shards:   0% 0/2 [00:00<?, ?it/s]" + tb(
             "subprocess.CalledProcessError: Command '['/usr/bin/python3', '-m', 'autotrain.trainers.clm', "
             "'--training_config', 'autotrain-LLM/training_params.json']' died with <Signals.SIGKILL: 9>.",
             frames=(("/usr/local/lib/python3.10/dist-packages/accelerate/commands/launch.py", 637, "simple_launcher",
                      "raise subprocess.CalledProcessError(returncode=process.returncode, cmd=cmd)"),)), "HOST_OOM"),
    Case("torchrun-exitcode-9-glog-full", "https://github.com/ByteDance-Seed/Bagel/issues/121",
         "W0604 21:29:49.834000 2768 site-packages/torch/distributed/elastic/multiprocessing/api.py:897] Sending "
         "process 2838 closing signal SIGTERM\n"
         "E0604 21:29:58.325000 2768 site-packages/torch/distributed/elastic/multiprocessing/api.py:869] failed "
         "(exitcode: -9) local_rank: 1 (pid: 2839) of binary: /root/miniconda3/envs/bagel/bin/python3.10\n",
         "HOST_OOM"),
    # SIGHUP from a closed terminal is not the OOM killer
    Case("sighup-not-host-oom", "https://github.com/Facico/Chinese-Vicuna/issues/73",
         TRAIN + "WARNING:torch.distributed.elastic.agent.server.api:Received 1 death signal, shutting down "
         "workers\ntorch.distributed.elastic.multiprocessing.api.SignalException: Process 17871 got signal: 1\n",
         None, ("HOST_OOM",)),

    # ---------------------------------------------------------------------------------- NCCL_ERROR
    Case("dist-backend-unhandled-cuda", "https://github.com/pytorch/pytorch/issues/111187", tb(
        "torch.distributed.DistBackendError: NCCL error in: ../torch/csrc/distributed/c10d/ProcessGroupNCCL.cpp:1331,"
        " unhandled cuda error (run with NCCL_DEBUG=INFO for details)", frames=DIST), "NCCL_ERROR"),
    Case("dist-backend-unhandled-system", "https://github.com/vllm-project/vllm/issues/10523", tb(
        "torch.distributed.DistBackendError: NCCL error in: ../torch/csrc/distributed/c10d/ProcessGroupNCCL.cpp:1333,"
        " unhandled system error (run with NCCL_DEBUG=INFO for details), NCCL version 2.18.1", frames=DIST),
         "NCCL_ERROR"),
    Case("nccl-internal-host-prefixed", "https://github.com/NVIDIA/nccl/issues/520", tb(
        "RuntimeError: NCCL error in: ../torch/lib/c10d/ProcessGroupNCCL.cpp:825, internal error, NCCL version "
        "20.9.9", "ncclInternalError: Internal check failed. This is either a bug in NCCL or due to memory "
        "corruption", frames=DIST, prefix="compute-dy-p4d24xlarge-77: "), "NCCL_ERROR"),
    Case("nccl-internal-please-report", "https://github.com/NVIDIA/nccl/issues/1546", tb(
        "torch.distributed.DistBackendError: NCCL error in: ../torch/csrc/distributed/c10d/ProcessGroupNCCL.cpp:1333,"
        " internal error - please report this issue to the NCCL developers, NCCL version 2.18.1",
        "ncclInternalError: Internal check failed.", "Last error:",
        "Socket recv failed while polling for opId=0x7f22ff731e10", frames=DIST), "NCCL_ERROR"),
    Case("nccl-unhandled-cuda-rank-prefixed", "https://github.com/NVIDIA/nccl/issues/1410", tb(
        "torch.distributed.DistBackendError: NCCL error in: ../torch/csrc/distributed/c10d/NCCLUtils.hpp:275, "
        "unhandled cuda error (run with NCCL_DEBUG=INFO for details), NCCL version 2.20.5",
        "ncclUnhandledCudaError: Call to CUDA function failed.", "Last error:", "Cuda failure 1 'invalid argument'",
        frames=DIST, prefix="[rank7]: "), "NCCL_ERROR", ("CUDA_OOM",)),
    Case("nccl-remote-error", "https://github.com/NVIDIA/nccl/issues/934", tb(
        "torch.distributed.DistBackendError: NCCL error in: ../torch/csrc/distributed/c10d/ProcessGroupNCCL.cpp:1347,"
        " remote process exited or there was a network error, NCCL version 2.18.5",
        "ncclRemoteError: A call failed possibly due to a network error or a remote process exiting prematurely.",
        frames=DIST), "NCCL_ERROR"),
    Case("nccl-invalid-usage-duplicate-gpu", "https://github.com/facebookresearch/ViewDiff/issues/24", tb(
        "torch.distributed.DistBackendError: NCCL error in: ../torch/csrc/distributed/c10d/ProcessGroupNCCL.cpp:1691,"
        " invalid usage (run with NCCL_DEBUG=WARN for details), NCCL version 2.19.3",
        "ncclInvalidUsage: This usually reflects invalid usage of NCCL library.", "Last error:",
        "Duplicate GPU detected : rank 0 and rank 1 both on CUDA device 1000", frames=DIST), "NCCL_ERROR"),
    Case("nccl-what-terminate-torch18", "https://github.com/llSourcell/Object_Detection_demo_LIVE/issues/9",
         "terminate called after throwing an instance of 'std::runtime_error'\n"
         "  what():  NCCL error in: /opt/conda/conda-bld/pytorch_1614378063927/work/torch/lib/c10d/../c10d/"
         "NCCLUtils.hpp:155, unhandled cuda error, NCCL version 2.7.8\n"
         "ncclUnhandledCudaError: Call to CUDA function failed.\n", "NCCL_ERROR"),
    Case("nccl-async-work-exception", "https://github.com/pytorch/pytorch/issues/149984",
         "Collective WorkNCCL(SeqNum=2, OpType=ALLREDUCE, NumelIn=1, NumelOut=1, Timeout(ms)=1000000) raised the "
         "following async exception: NCCL error: unhandled system error (run with NCCL_DEBUG=INFO for details), "
         "NCCL version 2.25.1\nncclSystemError: System call (e.g. socket, malloc) or external library call failed "
         "or device error. \nLast error:\n", "NCCL_ERROR"),
    Case("nccl-shm-posix-fallocate", "https://github.com/NVIDIA/nccl/issues/290",
         "gpu2-ru7:2144:2556 [2] NCCL INFO Ring 00 : 2[3d000] -> 3[3e000] via direct shared memory\n\n"
         "gpu2-ru7:2143:2561 [1] include/shm.h:28 NCCL WARN Call to posix_fallocate failed : No space left on "
         "device\ngpu2-ru7:2143:2561 [1] NCCL INFO include/shm.h:41 -> 2\n", "NCCL_ERROR", ("CHECKPOINT_ERROR",)),
    Case("nccl-shm-segment", "https://github.com/NVIDIA/nccl-tests/issues/166",
         "ubuntu:9621:9691 [6] misc/shmutils.cc:71 NCCL WARN Error: failed to extend /dev/shm/nccl-fjwOOB to "
         "5967876 bytes\n\nubuntu:9621:9691 [6] misc/shmutils.cc:112 NCCL WARN Error while creating shared memory "
         "segment /dev/shm/nccl-fjwOOB (size 5967872)\nubuntu:9621:9691 [6] NCCL INFO transport/shm.cc:114 -> 2\n",
         "NCCL_ERROR"),
    # NCCL_DEBUG=INFO start-up chatter of a healthy run: transports, interfaces, channels
    Case("nccl-info-chatter-negative", "https://github.com/NVIDIA/nccl/issues/834",
         "SH-IDC1-10-142-5-42:40544:40544 [0] NCCL INFO Bootstrap : Using ib0:10.142.205.42<0>\n"
         "SH-IDC1-10-142-5-42:40544:40544 [0] NCCL INFO NET/Plugin : No plugin found (libnccl-net.so), using "
         "internal implementation\n"
         "SH-IDC1-10-142-5-42:40544:40544 [0] NCCL INFO NET/IB : Using [0]mlx5_0:1/IB ; OOB ib0:10.142.205.42<0>\n"
         "ins-7df6eojsifuykig9:3018453:3024011 [2] NCCL INFO Channel 01 : 2[1040] -> 0[1020] via SHM/direct/direct\n"
         + TRAIN, None, ("NCCL_ERROR", "NCCL_TIMEOUT", "CHECKPOINT_ERROR")),

    # ------------------------------------------------------------------------------- DATASET_ERROR
    Case("datasets-builder-generation-error", "https://github.com/mymusise/ChatGLM-Tuning/issues/161", tb(
        "datasets.builder.DatasetGenerationError: An error occurred while generating the dataset", frames=DATA),
         "DATASET_ERROR"),
    Case("arrow-invalid-object-to-array", "https://github.com/hiyouga/LlamaFactory/issues/412", tb(
        "pyarrow.lib.ArrowInvalid: JSON parse error: Column() changed from object to array in row 0",
        frames=(("pyarrow/error.pxi", 100, "pyarrow.lib.check_status", ""),)), "DATASET_ERROR"),
    # the paste stops inside the traceback raised while handling the Arrow error
    Case("arrow-invalid-chained-then-cut", "https://github.com/hiyouga/LlamaFactory/issues/412",
         'Traceback (most recent call last):\n'
         '  File "/data/software/anaconda3/lib/python3.9/site-packages/datasets/packaged_modules/json/json.py", line 113, in _generate_tables\n'
         '    pa_table = paj.read_json(\n'
         '  File "pyarrow/_json.pyx", line 258, in pyarrow._json.read_json\n'
         '  File "pyarrow/error.pxi", line 144, in pyarrow.lib.pyarrow_internal_check_status\n'
         '  File "pyarrow/error.pxi", line 100, in pyarrow.lib.check_status\n'
         'pyarrow.lib.ArrowInvalid: JSON parse error: Column() changed from object to array in row 0\n'
         '\n'
         'During handling of the above exception, another exception occurred:\n'
         '\n'
         'Traceback (most recent call last):\n'
         '  File "/data/software/anaconda3/lib/python3.9/site-packages/datasets/builder.py", line 1858, in _prepare_split_single\n'
         '    for _, table in generator:\n'
         '  File "/data/software/anaconda3/lib/python3.9/site-packages/datasets/packaged_modules/json/json.py", line 143, in _generate_tables\n'
         '    pa_table = pa.Table.from_pydict(mapping)\n'
         '  File "pyarrow/table.pxi", line 3849, in pyarrow.lib.Table.from_pydict\n'
         '  File "pyarrow/table.pxi", line 5401, in pyarrow.lib._from_pydict\n'
         '  File "pyarrow/array.pxi", line 357, in pyarrow.lib.asarray\n'
         '  File "pyarrow/array.pxi", line 327, in pyarrow.lib.array\n'
         '  File "pyarrow/array.pxi", line 39, in pyarrow.lib._sequence_to_array\n'
         '  File "pyarrow/error.pxi", line 144, in pyarrow.lib.pyarrow_internal_check_status\n'
         '  File "pyarrow/error.pxi", line 123, in pyarrow.lib.che\n', "DATASET_ERROR"),
    Case("arrow-invalid-number-to-string", "https://github.com/ShishirPatil/gorilla/issues/371", tb(
        "pyarrow.lib.ArrowInvalid: JSON parse error: Column(/execution_result/[]) changed from number to string in "
        "row 13", frames=(("pyarrow/_json.pyx", 308, "pyarrow._json.read_json", ""),)), "DATASET_ERROR"),
    Case("llamafactory-no-valid-samples", "https://github.com/hiyouga/LlamaFactory/issues/2577", tb(
        "RuntimeError: Cannot find valid samples, check `data/README.md` for the data format.",
        frames=(("E:\\project\\LLaMA-Factory\\src\\llmtuner\\data\\loader.py", 189, "get_dataset",
                 'raise RuntimeError("Cannot find valid samples, check `data/README.md` for the data format.")'),)),
         "DATASET_ERROR"),
    Case("llamafactory-undefined-dataset", "https://github.com/hiyouga/LlamaFactory/issues/7703", tb(
        "ValueError: Undefined dataset mllm_demo in dataset_info.json.",
        frames=(("/kaggle/working/LLaMA-Factory/src/llamafactory/data/parser.py", 129, "get_dataset_list",
                 'raise ValueError(f"Undefined dataset {name} in {DATA_CONFIG}.")'),)), "DATASET_ERROR"),
    Case("trl-keyerror-text", "https://github.com/simplescaling/s1/issues/39", tb(
        "KeyError: 'text'", prefix="[rank0]: ",
        frames=(("/home/anaconda3/envs/s1/lib/python3.11/site-packages/trl/trainer/sft_trainer.py", 513, "tokenize",
                 "element[dataset_text_field] if formatting_func is None else formatting_func(element),"),)),
         "DATASET_ERROR"),
    Case("datasets-schema-inference-empty", "https://github.com/IBM/unitxt/issues/234", tb(
        "datasets.arrow_writer.SchemaInferenceError: Please pass `features` or at least one example when writing "
        "data", frames=DATA), "DATASET_ERROR"),
    Case("datasets-no-script-no-file", "https://github.com/huggingface/datasets/pull/7120", tb(
        "FileNotFoundError: Couldn't find a dataset script at /src/services/worker/Omega02gdfdd/bioclip-demo-zero-"
        "shot-mistakes/bioclip-demo-zero-shot-mistakes.py or any data file in the same directory. Couldn't find "
        "'Omega02gdfdd/bioclip-demo-zero-shot-mistakes' on the Hugging Face Hub either: FileNotFoundError: Unable "
        "to find 'hf://datasets/Omega02gdfdd/bioclip-demo-zero-shot-mistakes@12b0313ba4c3189ee5a24cb76200959e9bf7492e"
        "/data.csv' with any supported extension ['.csv', '.tsv', '.json', '.jsonl', '.parquet']"), "DATASET_ERROR"),
    Case("axolotl-unhandled-strategy", "https://github.com/axolotl-ai-cloud/axolotl/issues/1187",
         "[2024-01-24 02:25:26,330] [INFO] [axolotl.load_tokenizer:218] [PID:28954] [RANK:0] No Chat template "
         "selected. Consider adding a chat template for easier inference.\n" + tb(
             "ValueError: unhandled prompt tokenization strategy: chatml.intel",
             frames=(("/workspace/axolotl/src/axolotl/utils/data.py", 270, "load_tokenized_prepared_datasets",
                      "raise ValueError("),)), "DATASET_ERROR", ("TOKENIZER_ERROR",)),
    Case("axolotl-unsupported-prompt-style", "https://github.com/axolotl-ai-cloud/axolotl/issues/560", tb(
        "ValueError: unsupported prompt_style for ShareGPTPrompter(chatml)"), "DATASET_ERROR"),
    Case("datasets-cast-error-schema", "https://github.com/huggingface/datasets/pull/6509", tb(
        "datasets.table.CastError: Couldn't cast", frames=(
            ("/Users/quentinlhoest/hf/datasets/src/datasets/table.py", 2276, "cast_table_to_schema", "raise CastError("),))
         + "instruction: string\nother: string\nindex: string\noutput: string\nto\n{'answer_from': Value(dtype="
         "'string', id=None), 'instruction': Value(dtype='string', id=None)}\nbecause column names don't match\n",
         "DATASET_ERROR"),
    Case("datasets-couldnt-cast-valueerror", "https://github.com/datajuicer/data-juicer/issues/126", tb(
        "ValueError: Couldn't cast", frames=(
            ("/opt/conda/lib/python3.10/site-packages/datasets/table.py", 2248, "cast_table_to_schema",
             'raise ValueError(f"Couldn\'t cast\\n{table.schema}\\nto\\n{features}\\nbecause column names don\'t match")'),))
         + "id: string\nq_type: string\nto\n{'id': Value(dtype='string', id=None), 'content': Value(dtype='string', "
         "id=None)}\nbecause column names don't match\n", "DATASET_ERROR"),
    # a Colab paste: IPython's traceback header, collapsed frames, the Arrow error chained into another
    Case("colab-arrow-chain", "https://github.com/findalexli/mllm-dpo/issues/2",
         "ArrowInvalid                              Traceback (most recent call last)\n"
         "/usr/local/lib/python3.10/dist-packages/datasets/packaged_modules/json/json.py in _generate_tables(self, "
         "files)\n    121                                 try:\n"
         "--> 122                                     pa_table = paj.read_json(\n"
         "    123                                         io.BytesIO(batch), read_options=paj.ReadOptions(block_size="
         "block_size)\n\n17 frames\n"
         "ArrowInvalid: JSON parse error: Column() changed from object to array in row 0\n\n"
         "During handling of the above exception, another exception occurred:\n\n"
         "ArrowTypeError                            Traceback (most recent call last)\n"
         "ArrowTypeError: Expected bytes, got a 'int' object\n", "DATASET_ERROR"),
    Case("tokenizers-textencodeinput-none", "https://github.com/EricFillion/happy-transformer/issues/303", tb(
        "TypeError: TextEncodeInput must be Union[TextInputSequence, Tuple[InputSequence, InputSequence]]",
        frames=(("/usr/local/lib/python3.7/dist-packages/datasets/arrow_dataset.py", 2408, "_map_single",
                 "offset=offset,"),)), "DATASET_ERROR"),

    # ----------------------------------------------------------------------------- TOKENIZER_ERROR
    Case("chat-template-not-set-functions", "https://github.com/unslothai/unsloth/issues/2096", tb(
        "ValueError: Cannot use chat template functions because tokenizer.chat_template is not set and no template "
        "argument was passed! For information about writing templates and setting the tokenizer.chat_template "
        "attribute, please see the documentation at https://huggingface.co/docs/transformers/main/en/chat_templating"),
         "TOKENIZER_ERROR"),
    Case("chat-template-not-set-apply", "https://github.com/huggingface/transformers/issues/33246", tb(
        "ValueError: Cannot use apply_chat_template() because tokenizer.chat_template is not set and no template "
        "argument was passed! For information about writing templates and setting the tokenizer.chat_template "
        "attribute, please see the documentation at https://huggingface.co/docs/transformers/main/en/chat_templating"),
         "TOKENIZER_ERROR"),
    Case("chat-template-rank-prefixed-trl", "https://github.com/huggingface/open-r1/issues/85", tb(
        "ValueError: Cannot use chat template functions because tokenizer.chat_template is not set and no template "
        "argument was passed! For information about writing templates and setting the tokenizer.chat_template "
        "attribute, please see the documentation at https://huggingface.co/docs/transformers/main/en/chat_templating",
        prefix="[rank0]: ",
        frames=(("/home/ken/miniconda3/envs/openr1/lib/python3.11/site-packages/trl/extras/dataset_formatting.py",
                 47, "format_dataset",
                 "return tokenizer.apply_chat_template(examples[messages_field], tokenize=False, tools=tools)"),)),
         "TOKENIZER_ERROR"),
    Case("no-padding-token", "https://github.com/huggingface/trl/issues/466", tb(
        "ValueError: Asking to pad but the tokenizer does not have a padding token. Please select a token to use as "
        "`pad_token` `(tokenizer.pad_token = tokenizer.eos_token e.g.)` or add a new pad token via "
        "`tokenizer.add_special_tokens({'pad_token': '[PAD]'})`."), "TOKENIZER_ERROR", ("DATASET_ERROR",)),
    Case("no-padding-token-hard-wrapped", "https://github.com/LianjiaTech/BELLE/issues/103", tb(
        "ValueError: Asking to pad but the tokenizer does not have a padding token. Please select a token to use as "
        "`pad_token` `(tokenizer.pad_token = tokenizer.eos_token ", "e.g.)` or add a new pad token via "
        "`tokenizer.add_special_tokens({'pad_token': '[PAD]'})`."), "TOKENIZER_ERROR"),
    Case("jinja-roles-must-alternate", "https://github.com/FasterDecoding/Medusa/issues/102", tb(
        "jinja2.exceptions.TemplateError: Conversation roles must alternate user/assistant/user/assistant/...",
        frames=(("/root/miniconda3/envs/fschat/lib/python3.9/site-packages/transformers/tokenization_utils_base.py",
                 1743, "apply_chat_template", "rendered = compiled_template.render("),
                ("/root/miniconda3/envs/fschat/lib/python3.9/site-packages/transformers/tokenization_utils_base.py",
                 1771, "raise_exception", "raise TemplateError(message)"))), "TOKENIZER_ERROR"),
    Case("jinja-roles-dpo-map", "https://github.com/huggingface/alignment-handbook/issues/93", tb(
        "jinja2.exceptions.TemplateError: Conversation roles must alternate user/assistant/user/assistant/...",
        frames=DATA), "TOKENIZER_ERROR"),
    # a warning every long-context run prints; the tokenizer truncates later
    Case("token-indices-too-long-warning", "https://github.com/hiyouga/LlamaFactory/issues/1092",
         "[WARNING|tokenization_utils_base.py:3635] 2023-10-02 06:47:29,456 >> Token indices sequence length is "
         "longer than the specified maximum sequence length for this model (4391 > 4096). Running this sequence "
         "through the model will result in indexing errors\n" + TRAIN, None,
         ("TOKENIZER_ERROR", "DATASET_ERROR", "CONFIG_ERROR")),

    # embedding lookup past the vocabulary after adding tokens without resizing (an inference: low confidence)
    Case("index-out-of-range-in-self", "https://github.com/huggingface/transformers/issues/12763", tb(
        "IndexError: index out of range in self",
        frames=(("/usr/local/lib/python3.7/dist-packages/torch/nn/functional.py", 1913, "embedding",
                 "return torch.embedding(weight, input, padding_idx, scale_grad_by_freq, sparse)"),)),
         "TOKENIZER_ERROR"),

    # -------------------------------------------------------------------------------- CONFIG_ERROR
    Case("axolotl-pydantic-validation", "https://github.com/axolotl-ai-cloud/axolotl/pull/1840", tb(
        "pydantic_core._pydantic_core.ValidationError: 1 validation error for AxolotlConfigWCapabilities",
        frames=(("/root/micromamba/envs/dev/lib/python3.11/site-packages/pydantic/main.py", 171, "__init__",
                 "self.__pydantic_validator__.validate_python(data, self_instance=self)"),))
         + "pretraining_dataset\n  Input should be a valid list [type=list_type, input_value={'path': 'c4', 'name': "
         "'en', 'type': 'pretrain'}, input_type=dict]\n", "CONFIG_ERROR", ("DATASET_ERROR",)),
    Case("hf-load-best-strategy-mismatch", "https://github.com/RunxinXu/TSAR/issues/13", tb(
        "ValueError: --load_best_model_at_end requires the save and eval strategy to match, but found",
        frames=(("/home/hmzhong/anaconda3/envs/xs/lib/python3.9/site-packages/transformers/training_args.py", 1180,
                 "__post_init__", "raise ValueError("),))
         + "- Evaluation strategy: epoch\n- Save strategy: steps\n", "CONFIG_ERROR"),
    Case("hf-load-best-round-multiple", "https://github.com/huggingface/transformers/pull/38217", tb(
        "ValueError: --load_best_model_at_end requires the saving steps to be a round multiple of the evaluation "
        "steps, but found 0.1, which is not a round multiple of 0.02."), "CONFIG_ERROR"),
    Case("accelerate-8bit-other-device", "https://github.com/hiyouga/LlamaFactory/issues/1707", tb(
        "ValueError: You can't train a model that has been loaded in 8-bit precision on a different device than "
        "the one you're training on. Make sure you loaded the model on the correct device using for example "
        "`device_map={'':torch.cuda.current_device() or device_map={'':torch.xpu.current_device()}",
        frames=(("/usr/local/lib/python3.10/dist-packages/accelerate/accelerator.py", 1324, "prepare_model",
                 "raise ValueError("),)), "CONFIG_ERROR"),
    Case("accelerate-8bit-multiple-devices", "https://github.com/artidoro/qlora/issues/137", tb(
        "ValueError: You can't train a model that has been loaded in 8-bit precision on multiple devices"),
         "CONFIG_ERROR"),
    Case("accelerate-8bit-cpu-offload", "https://github.com/koa-fin/sep/issues/6", tb(
        "ValueError: You can't train a model that has been loaded in 8-bit precision with CPU or disk offload."),
         "CONFIG_ERROR"),

    Case("peft-target-modules-not-found", "https://github.com/hiyouga/LlamaFactory/issues/1785", tb(
        "ValueError: Target modules {'q_proj', 'v_proj'} not found in the base model. Please check the target "
        "modules and try again."), "CONFIG_ERROR"),
    Case("peft-target-modules-empty", "https://github.com/wp931120/baichuan_sft_lora/issues/1", tb(
        "ValueError: Target modules [] not found in the base model. Please check the target modules and try again.",
        frames=(("/usr/lib/python3.8/site-packages/peft-0.4.0.dev0-py3.8.egg/peft/tuners/lora.py", 333,
                 "_find_and_replace", ""),)), "CONFIG_ERROR"),

    Case("hfargparser-unused-option", "https://github.com/hiyouga/LlamaFactory/issues/1906", tb(
        "ValueError: Some specified arguments are not used by the HfArgumentParser: ['--neft_alpha', '0']"),
         "CONFIG_ERROR"),
    Case("hfargparser-unused-under-deepspeed", "https://github.com/CircleRadon/TokenPacker/issues/23", tb(
        "ValueError: Some specified arguments are not used by the HfArgumentParser: ['--scale_factor', '2']",
        frames=(("/root/miniconda3/envs/llava/lib/python3.10/site-packages/transformers/hf_argparser.py", 348,
                 "parse_args_into_dataclasses",
                 'raise ValueError(f"Some specified arguments are not used by the HfArgumentParser: {remaining_args}")'),))
         + "[2025-07-12 10:41:18,916] [INFO] [launch.py:315:sigkill_handler] Killing subprocess 14659\n",
         "CONFIG_ERROR", ("HOST_OOM",)),

    # ----------------------------------------------------------------------------------- ENV_ERROR
    Case("flash-attn-undefined-symbol", "https://github.com/Dao-AILab/flash-attention/issues/723", tb(
        "ImportError: /usr/local/lib/python3.8/dist-packages/flash_attn_2_cuda.cpython-38-x86_64-linux-gnu.so: "
        "undefined symbol: _ZN3c104cuda9SetDeviceEi",
        frames=(("/usr/local/lib/python3.8/dist-packages/flash_attn/flash_attn_interface.py", 8, "<module>",
                 "import flash_attn_2_cuda as flash_attn_cuda"),)), "ENV_ERROR"),
    Case("transformers-failed-to-import-flash-attn", "https://github.com/Dao-AILab/flash-attention/issues/1612", tb(
        "RuntimeError: Failed to import transformers.models.bloom.modeling_bloom because of the following error "
        "(look up to see its traceback):",
        "/home/ligy/anaconda3/lib/python3.11/site-packages/flash_attn_2_cuda.cpython-311-x86_64-linux-gnu.so: "
        "undefined symbol: _ZN2at4_ops5zeros4callEN3c108ArrayRefINS2_6SymIntEEENS2_8optionalINS2_10ScalarTypeEEENS6_"
        "INS2_6LayoutEEENS6_INS2_6DeviceEEENS6_IbEE"), "ENV_ERROR"),
    Case("nvidia-driver-too-old", "https://github.com/lllyasviel/Fooocus/issues/1313", tb(
        "RuntimeError: The NVIDIA driver on your system is too old (found version 11040). Please update your GPU "
        "driver by downloading and installing a new version from the URL: http://www.nvidia.com/Download/index.aspx "
        "Alternatively, go to: https://pytorch.org to install a PyTorch version that has been compiled with your "
        "version of the CUDA driver."), "ENV_ERROR"),
    Case("nvidia-driver-too-old-assert-multiline", "https://github.com/wuhuikai/FastFCN/issues/37", tb(
        "AssertionError: ", "The NVIDIA driver on your system is too old (found version 9000).",
        "Please update your GPU driver by downloading and installing a new",
        frames=(("/home/weizhaoxiang/anaconda3/envs/pytorch1.0/lib/python3.6/site-packages/torch/cuda/__init__.py",
                 108, "_check_driver", 'of the CUDA driver."""'),)), "ENV_ERROR"),
    Case("cuda-version-mismatch-multiline", "https://github.com/icip-cas/AutoAlign/issues/25", tb(
        "RuntimeError:", "      The detected CUDA version (11.8) mismatches the version that was used to compile",
        "      PyTorch (12.4). Please make sure to use the same CUDA versions.",
        frames=(("/usr/lib/python3/dist-packages/torch/utils/cpp_extension.py", 387, "_check_cuda_version",
                 "raise RuntimeError(CUDA_MISMATCH_MESSAGE.format(cuda_str_version, torch.version.cuda))"),)),
         "ENV_ERROR"),
    Case("deepspeed-cuda-mismatch", "https://github.com/JIA-Lab-research/MGM/issues/91", tb(
        "deepspeed.ops.op_builder.builder.CUDAMismatchException: >- DeepSpeed Op Builder: Installed CUDA version "
        "12.2 does not match the version torch was compiled with 11.7, unable to compile cuda/cpp extensions "
        "without a matching cuda version."), "ENV_ERROR"),
    Case("bitsandbytes-cuda-setup-failed", "https://github.com/bitsandbytes-foundation/bitsandbytes/issues/492", tb(
        "RuntimeError: ", "        CUDA Setup failed despite GPU being available. Please run the following ",
        "command to get more information:"), "ENV_ERROR"),
    Case("tokenizers-too-old-untagged-enum", "https://github.com/allenai/open-instruct/issues/738", tb(
        "Exception: data did not match any variant of untagged enum ModelWrapper at line 1251012 column 3",
        frames=(("/usr/local/lib/python3.11/dist-packages/transformers/tokenization_utils_fast.py", 111, "__init__",
                 "fast_tokenizer = TokenizerFast.from_file(fast_tokenizer_file)"),)), "ENV_ERROR"),

    Case("torch-not-compiled-with-cuda", "https://github.com/bmaltais/kohya_ss/issues/571", tb(
        "AssertionError: Torch not compiled with CUDA enabled",
        frames=(("D:\\kohya_ss\\venv\\lib\\site-packages\\torch\\cuda\\__init__.py", 239, "_lazy_init",
                 'raise AssertionError("Torch not compiled with CUDA enabled")'),)), "ENV_ERROR"),
    Case("no-cuda-gpus-available", "https://github.com/jiaw-z/CoR-GS/issues/23", tb(
        "RuntimeError: No CUDA GPUs are available",
        frames=(("./.local/lib/python3.8/site-packages/torch/cuda/__init__.py", 293, "_lazy_init",
                 "torch._C._cuda_init()"),)), "ENV_ERROR"),
    Case("cuda-home-not-set", "https://github.com/sp-uhh/storm/issues/14", tb(
        "OSError: CUDA_HOME environment variable is not set. Please set it to your CUDA install root.",
        frames=(("/usr/local/lib/python3.10/dist-packages/torch/utils/cpp_extension.py", 2230, "_join_cuda_home",
                 "raise EnvironmentError('CUDA_HOME environment variable is not set. '"),)), "ENV_ERROR"),
    # a CPU-only bitsandbytes build warns at import; runs that use no 8-bit optimizer train on
    Case("bnb-compiled-without-gpu-warning", "https://github.com/bitsandbytes-foundation/bitsandbytes/issues/1056",
         "/home/ubuntu/miniconda3/envs/samsum/lib/python3.12/site-packages/bitsandbytes/cextension.py:34: UserWarning: "
         "The installed version of bitsandbytes was compiled without GPU support. 8-bit optimizers, 8-bit "
         "multiplication, and GPU quantization are unavailable.\n  warn(\"The installed version of bitsandbytes was "
         "compiled without GPU support. \"\n" + TRAIN, None, ("ENV_ERROR",)),
    Case("ds-report-async-io-warning", "https://github.com/deepspeedai/DeepSpeed/issues/5005",
         " [WARNING]  async_io requires the dev libaio .so object and headers but these were not found.\n"
         " [WARNING]  async_io: please install the libaio-devel package with yum\n" + TRAIN, None, ("ENV_ERROR",)),
    Case("axolotl-rmsnorm-not-found-info", "https://github.com/axolotl-ai-cloud/axolotl/issues/1527",
         "[2024-04-17 00:08:54,249] [INFO] [axolotl.replace_llama_attn_with_flash_attn:133] [PID:808743] [RANK:3] "
         "optimized flash-attention RMSNorm not found (run `pip install 'git+https://github.com/Dao-AILab/flash-"
         "attention.git#egg=dropout_layer_norm&subdirectory=csrc/layer_norm'`)\n" + TRAIN, None, ("ENV_ERROR",)),

    # ---------------------------------------------------------------------------- CHECKPOINT_ERROR
    Case("safetensors-header-too-large", "https://github.com/huggingface/diffusers/issues/5520", tb(
        "safetensors_rust.SafetensorError: Error while deserializing header: HeaderTooLarge",
        frames=(("/root/miniconda3/lib/python3.10/site-packages/transformers/modeling_utils.py", 429,
                 "load_state_dict", 'with safe_open(checkpoint_file, framework="pt") as f:'),)), "CHECKPOINT_ERROR"),
    Case("safetensors-serialize-storage-full", "https://github.com/hiyouga/LlamaFactory/issues/5155", TRAIN + tb(
        'safetensors_rust.SafetensorError: Error while serializing: IoError(Os { code: 28, kind: StorageFull, '
        'message: "No space left on device" })', frames=SAVE), "CHECKPOINT_ERROR"),
    Case("safetensors-serialize-io-error", "https://github.com/huggingface/transformers/issues/35895", tb(
        'safetensors_rust.SafetensorError: Error while serializing: IoError(Os { code: 5, kind: Uncategorized, '
        'message: "Input/output error" })', frames=SAVE), "CHECKPOINT_ERROR"),
    Case("stream-reader-central-directory", "https://github.com/open-mmlab/mmdetection/issues/4835", tb(
        "RuntimeError: [enforce fail at inline_container.cc:144] . PytorchStreamReader failed reading zip archive: "
        "failed finding central directory"), "CHECKPOINT_ERROR"),
    Case("stream-reader-torch2", "https://github.com/sml2h3/dddd_trainer/issues/36", tb(
        "RuntimeError: PytorchStreamReader failed reading zip archive: failed finding central directory"),
         "CHECKPOINT_ERROR"),
    Case("stream-writer-after-deepspeed-save", "https://github.com/zai-org/ChatGLM-6B/issues/1166",
         "[2023-06-02 00:34:14,497] [INFO] [torch_checkpoint_engine.py:21:save] [Torch] Saving ./output/deepspeed/"
         "checkpoint-1428/global_step1428/bf16_zero_pp_rank_0_mp_rank_00_optim_states.pt...\n" + tb(
             "RuntimeError: [enforce fail at inline_container.cc:471] . PytorchStreamWriter failed writing file "
             "data/3: file write failed",
             frames=(("/environment/miniconda3/envs/py39/lib/python3.9/site-packages/torch/serialization.py", 668,
                      "_save", "zip_file.write_record(name, storage.data_ptr(), num_bytes)"),)), "CHECKPOINT_ERROR"),
    Case("stream-writer-ray-actor-prefixed", "https://github.com/hkust-nlp/simpleRL-reason/issues/19", tb(
        "RuntimeError: [enforce fail at inline_container.cc:778] . PytorchStreamWriter failed writing file data/0: "
        "file write failed", prefix="(ActorModelRayActorBOX pid=499400) ",
        frames=(("/root/miniconda3/envs/zero/lib/python3.10/site-packages/torch/serialization.py", 1266, "_save",
                 "zip_file.write_record(name, storage, num_bytes)"),)), "CHECKPOINT_ERROR"),
    Case("torch10-write-fd-failed", "https://github.com/pytorch/pytorch/issues/10577", tb(
        "RuntimeError: write(): fd 29 failed with Input/output error",
        frames=(("/home/user290/Venvs/pytorch.1.0.1/lib/python3.7/site-packages/torch/serialization.py", 297, "_save",
                 "serialized_storages[key]._write_file(f, _should_read_directly(f))"),)), "CHECKPOINT_ERROR"),
    Case("peft-state-dict-size-mismatch", "https://github.com/huggingface/peft/issues/276", tb(
        "RuntimeError: Error(s) in loading state_dict for PeftModelForCausalLM:",
        "        size mismatch for base_model.model.transformer.h.0.attn.c_attn.lora_A.default.weight: copying a param "
        "with shape torch.Size([32, 1024]) from checkpoint, the shape in",
        "current model is torch.Size([16, 1024])."), "CHECKPOINT_ERROR"),
    Case("hf-no-valid-checkpoint", "https://github.com/artidoro/qlora/issues/27", tb(
        "ValueError: Can't find a valid checkpoint at ./output/checkpoint-500",
        frames=(("/workspace/anaconda3/envs/qlora310/lib/python3.10/site-packages/transformers/trainer.py", 2159,
                 "_load_from_checkpoint", 'raise ValueError(f"Can\'t find a valid checkpoint at '
                 '{resume_from_checkpoint}")'),)), "CHECKPOINT_ERROR"),
    Case("weights-only-load-failed-torch26", "https://github.com/modelscope/ms-swift/issues/5808", tb(
        "_pickle.UnpicklingError: Weights only load failed. This file can still be loaded, to do so you have two "
        "options, do those steps only if you trust the source of the checkpoint. ",
        "\t(1) In PyTorch 2.6, we changed the default value of the `weights_only` argument in `torch.load` from "
        "`False` to `True`. Re-running `torch.load` with `weights_only` set to `False` will likely succeed, but it can "
        "result in arbitrary code execution. Do it only if you got the file from a trusted source.",
        "\tWeightsUnpickler error: Unsupported global: GLOBAL deepspeed.runtime.fp16.loss_scaler.LossScaler was not "
        "an allowed global by default.", prefix="[rank4]: "), "CHECKPOINT_ERROR"),
    Case("no-weights-file-in-directory", "https://github.com/huggingface/transformers/issues/24687", tb(
        "OSError: Error no file named pytorch_model.bin, tf_model.h5, model.ckpt.index or flax_model.msgpack found "
        "in directory /mnt/workspace/lawyer-llama/lawyer-llama-13b-beta1.0.", frames=LOAD), "CHECKPOINT_ERROR"),
    Case("llava-no-valid-checkpoint-found", "https://github.com/haotian-liu/LLaVA/issues/901", tb(
        "ValueError: No valid checkpoint found in output directory"), "CHECKPOINT_ERROR"),

    # ------------------------------------------------------------- look-alikes in healthy runs: none of the eight
    Case("nccl-async-error-handling-deprecated", "https://github.com/ray-project/ray/issues/47286",
         "(RayTrainWorker pid=2273, ip=172.24.21.66) [rank7]:[W Utils.hpp:108] Warning: Environment variable "
         "NCCL_ASYNC_ERROR_HANDLING is deprecated; use TORCH_NCCL_ASYNC_ERROR_HANDLING instead (function "
         "getCvarString)\n" + TRAIN, None, MINE),
    Case("torch-load-weights-only-futurewarning", "https://github.com/bmaltais/kohya_ss/issues/2989",
         "D:\\kohya_ss\\venv\\lib\\site-packages\\accelerate\\checkpointing.py:212: FutureWarning: You are using "
         "`torch.load` with `weights_only=False` (the current default value), which uses the default pickle module "
         "implicitly. It is possible to construct malicious pickle data which will execute arbitrary code during "
         "unpickling. In a future release, the default value for `weights_only` will be flipped to `True`.\n"
         "  state_dict = torch.load(input_model_file, map_location=map_location)\n" + TRAIN, None, MINE),
    Case("amdsmi-error-code-warning", "https://github.com/huggingface/autotrain-advanced/issues/737",
         "/home/musclez/ComfyUI/.venv/lib/python3.11/site-packages/torch/cuda/__init__.py:641: UserWarning: Can't "
         "initialize amdsmi - Error code: 34\n  warnings.warn(f\"Can't initialize amdsmi - Error code: "
         "{e.err_code}\")\n" + TRAIN, None, MINE),
    Case("repo-card-metadata-warning", "https://github.com/huggingface/trl/pull/1758",
         "Repo card metadata block was not found. Setting CardData to empty.\n" + TRAIN, None, MINE),
    Case("deepspeed-startup-overflow-burst", "https://github.com/deepspeedai/DeepSpeed/issues/931",
         "[2023-04-28 06:51:29,903] [INFO] [loss_scaler.py:188:update_scale] [deepspeed] OVERFLOW! Rank 0 Skipping "
         "step. Attempted loss scale: 65536, but hysteresis is 2. Reducing hysteresis to 1\n"
         "[2023-04-28 06:51:30,648] [INFO] [loss_scaler.py:181:update_scale] [deepspeed] OVERFLOW! Rank 0 Skipping "
         "step. Attempted loss scale: 65536, reducing to 32768\n"
         "[2023-04-28 06:51:31,392] [INFO] [loss_scaler.py:181:update_scale] [deepspeed] OVERFLOW! Rank 0 Skipping "
         "step. Attempted loss scale: 32768, reducing to 16384\n" + TRAIN, None, MINE),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_real_line(case: Case, tmp_path) -> None:
    path = tmp_path / "run.log"
    path.write_text(case.text, encoding="utf-8")
    found = {f.id for f in analyze(str(path), Options()).findings}
    if case.expect is not None:
        assert case.expect in found, f"{case.url}: {sorted(found)}"
    wrong = found & set(case.absent)
    assert not wrong, f"{case.url}: look-alike found as {sorted(wrong)}"


def test_cases_are_sourced() -> None:
    """Every case names the public thread its text was copied from, and ids are unique."""
    assert all(c.url.startswith("https://github.com/") for c in CASES)
    assert len({c.id for c in CASES}) == len(CASES)
