#!/usr/bin/python3
"""The peer of `fnf bench --preset`: the same measurements with diffusers 0.27.2 + peft 0.10.0 on PyTorch.

`fnf bench --preset sd15 --peer` runs this once per figure, right after its own measurement of the same figure, and
prints both sides and the ratios. Run alone it prints one JSON line, e.g.

    /usr/bin/python3 bench/sd_peer.py --model ~/.cache/focusnfix/presets/sd15 --measure unet_forward_no_grad --size 256

Setup (Debian 12; diffusers, peft, transformers, huggingface_hub and accelerate are not packaged there):

    apt-get install -y python3-torch libopenblas0-openmp python3-packaging python3-filelock python3-regex \\
        python3-requests python3-yaml python3-tqdm python3-importlib-metadata python3-fsspec python3-psutil python3-pil
    # the sources of the reference versions, unpacked under the peer root (default ~/.cache/focusnfix/peer,
    # or $FNF_PEER_ROOT, or --peer-root); from git clones of each repository:
    git -C diffusers       archive v0.27.2  src | tar -x -C $ROOT/diffusers-0.27.2
    git -C peft            archive v0.10.0  src | tar -x -C $ROOT/peft-0.10.0
    git -C huggingface_hub archive v0.21.4  src | tar -x -C $ROOT/huggingface_hub-0.21.4
    git -C accelerate      archive v0.28.0  src | tar -x -C $ROOT/accelerate-0.28.0
    git -C transformers    archive 1a77f07f6556b1482bd5e5f8399aa528727d1b47 src | tar -x -C $ROOT/transformers-1a77f07
    (the transformers commit is the v4.39.dev0 bump of 2024-02-21, the version the golden files were made with)

transformers is optional: its repository can be too large to fetch, and no Python registry may be reachable. Without
$ROOT/transformers-1a77f07/src the script uses bench/transformers_stand_in, which gives the names peft imports at import
time and a CLIP text encoder with transformers' layer structure and parameter shapes (resident on both sides, never
timed); the measured operations use diffusers and peft only. The report's "transformers" version then says
"0.0-stand-in".

Each `<name>/src` folder goes on sys.path. When a folder is missing or the imports fail, the script prints
{"skipped": "<why>"} and exits 0, and fnf reports the peer as skipped.

The models are built from the pipeline folder's config.json files with PyTorch's random initialisation (the weights are
random on both sides; their values do not change the work done). The `safetensors` package is not needed: diffusers
imports it only to read and write weight files, which this script never does, so an inert stand-in is put in its place
when it is absent. The CLIP text encoder is built too (it is resident on both sides) and encodes fixed token ids; it is
not timed on either side.
Timing and memory follow fnf: one untimed warm-up, then the timed repeats; the peak RSS (VmHWM) is reset after the
warm-up by writing 5 to /proc/self/clear_refs, so it is the peak of the timed repeats with the model resident (glibc's
free heap memory is first returned with malloc_trim, on both sides).
"""
import argparse
import atexit
import ctypes
import importlib.machinery
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import time
import types

SOURCES = ["diffusers-0.27.2", "peft-0.10.0", "huggingface_hub-0.21.4", "accelerate-0.28.0"]
# Optional: without it the stand-in beside this script is used (see import_peer).
TRANSFORMERS_SOURCE = "transformers-1a77f07"
TRANSFORMERS_STAND_IN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "transformers_stand_in")
NAMES = ["unet_forward_no_grad", "unet_lora_forward_backward", "vae_decode_no_grad", "vae_decode_grad",
         "vae_decode_grad_checkpointed", "train_step_k1", "train_step_k2", "train_step_k4"]
# As fnf's SdMeasurement.
LORA_RANK = 64
NO_GRAD_STEPS_BEFORE_WINDOW = 2
GUIDANCE_SCALE = 7.5
LAMBDA = 1.0


def skip(why):
    print(json.dumps({"skipped": why}))
    sys.exit(0)


# Source folders carry no installed-package metadata, which transformers and accelerate look up
# (importlib.metadata) to check versions; these are the versions of the sources above. safetensors is the stand-in.
METADATA = {"diffusers": "0.27.2", "peft": "0.10.0", "transformers": "4.39.0.dev0", "huggingface_hub": "0.21.4",
            "accelerate": "0.28.0", "safetensors": "0.4.2"}


def package_metadata(real_transformers):
    """A temporary folder of minimal .dist-info entries for the source packages (removed when the script exits)."""
    folder = tempfile.mkdtemp(prefix="fnf-peer-metadata-")
    atexit.register(shutil.rmtree, folder, True)
    for name, version in METADATA.items():
        if name == "safetensors" and importlib.util.find_spec("safetensors") is not None:
            continue  # the real package is installed and has its own metadata
        if name == "transformers" and not real_transformers:
            continue  # no version for the stand-in, so diffusers and accelerate treat transformers as absent
        info = os.path.join(folder, f"{name}-{version}.dist-info")
        os.makedirs(info)
        with open(os.path.join(info, "METADATA"), "w") as f:
            f.write(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    return folder


def import_peer(root):
    missing = [s for s in SOURCES if not os.path.isdir(os.path.join(root, s, "src"))]
    if missing:
        skip(f"peer sources not found under {root}: {', '.join(missing)} (see bench/sd_peer.py for how to get them)")
    for s in SOURCES:
        sys.path.insert(0, os.path.join(root, s, "src"))
    # transformers' repository is larger than some machines can fetch; the peer needs from it only import-time names
    # for peft and the (untimed, resident) CLIP text encoder, which the stand-in provides with the same shapes.
    real_transformers = os.path.isdir(os.path.join(root, TRANSFORMERS_SOURCE, "src"))
    sys.path.insert(0, os.path.join(root, TRANSFORMERS_SOURCE, "src") if real_transformers else TRANSFORMERS_STAND_IN)
    sys.path.insert(0, package_metadata(real_transformers))
    try:
        import safetensors  # noqa: F401
    except ImportError:
        stand_in = types.ModuleType("safetensors")
        stand_in.__version__ = "0.0-stand-in"
        stand_in.__spec__ = importlib.machinery.ModuleSpec("safetensors", None)
        stand_in.torch = types.ModuleType("safetensors.torch")
        stand_in.torch.__spec__ = importlib.machinery.ModuleSpec("safetensors.torch", None)

        def refuse(*_a, **_k):
            raise RuntimeError("safetensors stand-in: this script never reads or writes weight files")
        # Every function it is asked for refuses when called (PEP 562 module __getattr__).
        stand_in.torch.__getattr__ = lambda _name: refuse
        stand_in.safe_open = refuse
        stand_in.SafetensorError = type("SafetensorError", (Exception,), {})
        sys.modules["safetensors"] = stand_in
        sys.modules["safetensors.torch"] = stand_in.torch
    try:
        import torch
        import diffusers
        import peft
        import transformers
        from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel  # noqa: F401
        from peft import LoraConfig  # noqa: F401
    except Exception as e:  # any import failure means the peer cannot run here: say why and skip
        skip(f"the peer's libraries do not import: {type(e).__name__}: {e}")
    return {"torch": torch.__version__, "diffusers": diffusers.__version__, "peft": peft.__version__,
            "transformers": transformers.__version__, "python": sys.version.split()[0]}


def vm_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    return float("nan")


def trim_heap():
    """As fnf: glibc's free heap memory goes back to the system before the baseline is read."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass


def reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def load_config(folder, component, name):
    with open(os.path.join(folder, component, name)) as f:
        return json.load(f)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="pipeline folder (its configs are used, not its weights)")
    ap.add_argument("--measure", required=True, choices=NAMES)
    ap.add_argument("--size", type=int, required=True)
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--peer-root", default=os.environ.get("FNF_PEER_ROOT", os.path.expanduser("~/.cache/focusnfix/peer")))
    a = ap.parse_args()
    versions = import_peer(a.peer_root)

    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from peft import LoraConfig

    if a.threads > 0:
        torch.set_num_threads(a.threads)
    dtype = getattr(torch, a.dtype)
    torch.manual_seed(0)
    unet_cfg = load_config(a.model, "unet", "config.json")
    vae_cfg = load_config(a.model, "vae", "config.json")
    unet = UNet2DConditionModel.from_config(unet_cfg).to(dtype).eval().requires_grad_(False)
    vae = AutoencoderKL.from_config(vae_cfg).to(dtype).eval().requires_grad_(False)
    scale = 2 ** (len(vae_cfg["block_out_channels"]) - 1)
    latent = a.size // scale
    g = torch.Generator().manual_seed(1234)
    x = torch.randn(1, unet_cfg["in_channels"], latent, latent, generator=g).to(dtype)
    t = torch.tensor(500)
    # The text encoder is part of the pipeline's memory on both sides, so it is built here too; its states are the
    # cross-attention input. Token ids: start, a few words' ids, end, end-padding (the prompt's ids do not matter here).
    from transformers import CLIPTextConfig, CLIPTextModel
    text_encoder = CLIPTextModel(CLIPTextConfig.from_json_file(os.path.join(a.model, "text_encoder", "config.json")))
    text_encoder = text_encoder.to(dtype).eval().requires_grad_(False)

    def encode(ids):
        with torch.no_grad():
            ids = torch.tensor([ids + [49407] * (77 - len(ids))])
            return text_encoder(ids).last_hidden_state.to(dtype)
    ehs = encode([49406, 320, 8853, 530, 320, 5046, 49407])

    def add_lora():
        unet.add_adapter(LoraConfig(r=LORA_RANK, lora_alpha=LORA_RANK, init_lora_weights=True,
                                    target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
        params = [p for p in unet.parameters() if p.requires_grad]
        return params

    name = a.measure
    if name == "unet_forward_no_grad":
        def body():
            with torch.no_grad():
                unet(x, t, ehs).sample
    elif name == "unet_lora_forward_backward":
        params = add_lora()

        def body():
            unet(x, t, ehs).sample.float().square().mean().backward()
            for p in params:
                p.grad = None
    elif name == "vae_decode_no_grad":
        def body():
            with torch.no_grad():
                vae.decode(x).sample
    elif name.startswith("vae_decode_grad"):
        if name.endswith("_checkpointed"):
            vae.enable_gradient_checkpointing()
            vae.train()  # diffusers checkpoints the decoder's blocks only in training mode

        def body():
            z = x.detach().requires_grad_(True)
            vae.decode(z).sample.float().mean().backward()
    else:
        k = int(name[len("train_step_k"):])
        params = add_lora()
        opt = torch.optim.AdamW(params, lr=1e-4)
        # The training scripts' memory setting: every block of the UNet and of the VAE decoder checkpointed.
        unet.enable_gradient_checkpointing()
        unet.train()
        vae.enable_gradient_checkpointing()
        vae.train()
        sched = DDIMScheduler.from_config(load_config(a.model, "scheduler", "scheduler_config.json"))
        text = torch.cat([encode([49406, 49407]), ehs])
        noise = torch.randn(1, unet_cfg["in_channels"], latent, latent, generator=g)
        originals = torch.rand(1, 3, a.size, a.size, generator=g)
        masks = torch.zeros(1, 1, a.size, a.size)
        masks[:, :, a.size // 4:3 * a.size // 4, a.size // 4:3 * a.size // 4] = 1
        steps = NO_GRAD_STEPS_BEFORE_WINDOW + k

        def body():
            sched.set_timesteps(steps)
            latents = noise * sched.init_noise_sigma
            for i, ts in enumerate(sched.timesteps):
                with torch.set_grad_enabled(i >= steps - k):
                    inp = sched.scale_model_input(torch.cat([latents] * 2), ts).to(dtype)
                    out = unet(inp, ts, text).sample.float()
                    uncond, cond = out.chunk(2)
                    eps = uncond + GUIDANCE_SCALE * (cond - uncond)
                    latents = sched.step(eps, ts, latents).prev_sample
            images = (vae.decode((latents / vae_cfg["scaling_factor"]).to(dtype)).sample.float() / 2 + 0.5).clamp(0, 1)
            reward = images.mean(dim=(1, 2, 3))
            constraint = ((1 - masks) * (images - originals)).flatten(1).norm(dim=1)
            loss = (-reward + LAMBDA * constraint).mean()
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

    trim_heap()
    model_rss = vm_kib("VmRSS:") / 1024
    body()  # warm-up, as fnf
    trim_heap()
    reset = reset_peak()
    warm_rss = vm_kib("VmRSS:") / 1024
    seconds = []
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        body()
        seconds.append(time.perf_counter() - t0)
    print(json.dumps({"name": name, "size": a.size, "seconds": seconds, "peak_rss_mib": vm_kib("VmHWM:") / 1024,
                      "model_rss_mib": model_rss, "warm_rss_mib": warm_rss, "peak_reset": reset, "threads": torch.get_num_threads(),
                      "versions": versions}))


if __name__ == "__main__":
    main()
