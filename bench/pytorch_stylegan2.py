#!/usr/bin/env python3
"""A plain PyTorch StyleGAN2 (config-f) generator: the baseline that native/cuda/gpu-check.sh times
beside facegan's CUDA backend on a GPU machine.

Written for this project from the math in docs/stylegan2.md (no NVIDIA code: theirs is
under a non-commercial licence). Only for the GPU machine: nothing in the product or its tests
needs Python.

  python3 bench/pytorch_stylegan2.py --check MODEL.safetensors GOLDEN_PREFIX
      loads a facegan .safetensors (docs/weights-format.md: the official tensor names, the config in
      __metadata__) and checks ws and images against GOLDEN_PREFIX.golden.{safetensors,json}, in
      float32 with TF32 off: the proof that the timed network computes StyleGAN2.
  python3 bench/pytorch_stylegan2.py [--config ffhq1024] [--batch 1,8,32] [--modes fp32,tf32,fp16,bf16]
                                     [--iters 5] [--min-ms 1000] [--compile] [--budget-s S]
      times synthesis on random weights of that shape (the shapes of facegan-bench's random configs).

Modes: fp32 (TF32 off in cuDNN and matmul), tf32, fp16 and bf16 (weights and activations in that
type, channels-last, styles and demodulation in float32, the input channels pre-scaled by the
style's infinity norm as the official code does in float16); --compile also times one mode
(--compile-mode, fp16 by default) through torch.compile, at the largest batch only, when it works.

The batched formulation (scale the input channels by s, convolve with the fixed weight, scale the
output channels by d) shares one weight across the batch, so cuDNN runs plain convolutions; the
up-convolution is conv_transpose2d (stride 2) then the 4x4 FIR as a depthwise convolution.

What is timed, as facegan-bench does: one synthesis call from ws on the host to uint8 HWC images
on the host (the ws upload and the image download included), wall clock, median of the timed
calls after one warm-up; TFLOP/s = 2 x nominal MACs (each up-convolution counted at its input
resolution: about 74.3 GMAC per 1024^2 image) x images / time. gpu_ms_img (CUDA events around the
synthesis and the uint8 conversion) is printed too. Output lines starting with "RESULT " are
key=value pairs, the same keys as facegan-bench's.
"""
import argparse
import json
import math
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

SQRT2 = math.sqrt(2.0)

CONFIGS = {  # the shapes of native/tools/random_model.cc's configs of the same names
    'ffhq1024': dict(resolution=1024, z_dim=512, w_dim=512, c_dim=0, mapping_layers=8, channel_base=32768,
                     channel_max=512, img_channels=3, conv_clamp=None),
    'ffhq512': dict(resolution=512, z_dim=512, w_dim=512, c_dim=0, mapping_layers=8, channel_base=32768,
                    channel_max=512, img_channels=3, conv_clamp=None),
    'ffhq256': dict(resolution=256, z_dim=512, w_dim=512, c_dim=0, mapping_layers=8, channel_base=16384,
                    channel_max=512, img_channels=3, conv_clamp=None),
    'tiny': dict(resolution=32, z_dim=64, w_dim=64, c_dim=0, mapping_layers=2, channel_base=1024,
                 channel_max=64, img_channels=3, conv_clamp=None),
}


# --------------------------------------------------------------------------------------------
# safetensors (read only; no dependency on the safetensors package)

def read_safetensors(path):
    with open(path, 'rb') as f:
        buf = f.read()
    (n,) = struct.unpack('<Q', buf[:8])
    header = json.loads(buf[8:8 + n].decode('utf-8'))
    meta = header.pop('__metadata__', {}) or {}
    base = 8 + n
    types = {'F32': np.float32, 'F16': np.float16, 'F64': np.float64, 'U8': np.uint8, 'BF16': None}
    out = {}
    for name, e in header.items():
        b, end = e['data_offsets']
        raw = buf[base + b: base + end]
        dt = types.get(e['dtype'])
        if e['dtype'] == 'BF16':
            a = (np.frombuffer(raw, np.uint16).astype(np.uint32) << 16).view(np.float32)
        elif dt is None:
            raise ValueError('%s: dtype %s not supported' % (name, e['dtype']))
        else:
            a = np.frombuffer(raw, dt)
        out[name] = a.reshape(e['shape']) if e['shape'] else a.reshape(())
    return out, meta


# --------------------------------------------------------------------------------------------
# The generator

def channels(cfg, r):
    return min(cfg['channel_base'] // r, cfg['channel_max'])


def random_tensors(cfg, seed=1):
    """Random weights with the names and shapes of an official checkpoint (the distributions of
    random_model.cc, not its exact values)."""
    g = torch.Generator().manual_seed(seed)

    def n(shape, mean=0.0, std=1.0):
        return (torch.randn(*shape, generator=g) * std + mean) if shape else (torch.randn(1, generator=g)[0] * std + mean)

    t = {}
    w, lr = cfg['w_dim'], 0.01
    if cfg['c_dim']:
        t['mapping.embed.weight'] = n([w, cfg['c_dim']])
        t['mapping.embed.bias'] = n([w], 0, 0.1)
    for i in range(cfg['mapping_layers']):
        fin = (cfg['z_dim'] + (w if cfg['c_dim'] else 0)) if i == 0 else w
        t['mapping.fc%d.weight' % i] = n([w, fin], 0, 1 / lr)
        t['mapping.fc%d.bias' % i] = n([w], 0, 0.1 / lr)
    t['mapping.w_avg'] = n([w], 0, 0.5)
    r = 4
    while r <= cfg['resolution']:
        pre = 'synthesis.b%d.' % r
        cin, cout = (channels(cfg, 4) if r == 4 else channels(cfg, r // 2)), channels(cfg, r)
        if r == 4:
            t[pre + 'const'] = n([channels(cfg, 4), 4, 4])
        for ci in ([1] if r == 4 else [0, 1]):
            lp = pre + 'conv%d.' % ci
            fin = cin if ci == 0 else cout
            t[lp + 'affine.weight'] = n([fin, w])
            t[lp + 'affine.bias'] = n([fin], 1.0, 0.2)
            t[lp + 'weight'] = n([cout, fin, 3, 3])
            t[lp + 'bias'] = n([cout], 0, 0.1)
            t[lp + 'noise_strength'] = n([], 0, 0.1)
            t[lp + 'noise_const'] = n([r, r])
        t[pre + 'torgb.affine.weight'] = n([cout, w])
        t[pre + 'torgb.affine.bias'] = n([cout], 1.0, 0.2)
        t[pre + 'torgb.weight'] = n([cfg['img_channels'], cout, 1, 1])
        t[pre + 'torgb.bias'] = n([cfg['img_channels']], 0, 0.1)
        r *= 2
    return t


def nominal_macs(cfg):
    """Multiply-adds per image, counted as facegan-bench counts them (up-convs at input size)."""
    w, m = cfg['w_dim'], 0
    if cfg['c_dim']:
        m += w * cfg['c_dim']
    for i in range(cfg['mapping_layers']):
        m += w * ((cfg['z_dim'] + (w if cfg['c_dim'] else 0)) if i == 0 else w)
    r = 4
    while r <= cfg['resolution']:
        cin, cout = (channels(cfg, 4) if r == 4 else channels(cfg, r // 2)), channels(cfg, r)
        for ci in ([1] if r == 4 else [0, 1]):
            fin = cin if ci == 0 else cout
            m += fin * w + cout * fin * 9 * (r // 2 if ci == 0 else r) ** 2
        m += cout * w + cfg['img_channels'] * cout * r * r
        r *= 2
    return m


def upsample2d(x):
    """x2 upsample with the [1,3,3,1] FIR, gain 4 (zero insertion, padding [2,1]): per axis
    out[2j] = .25 x[j-1] + .75 x[j], out[2j+1] = .75 x[j] + .25 x[j+1], zero outside."""
    n, c, h, w = x.shape
    p = F.pad(x, (1, 1, 0, 0))
    x = torch.stack([0.25 * p[..., :-2] + 0.75 * p[..., 1:-1], 0.75 * p[..., 1:-1] + 0.25 * p[..., 2:]], -1)
    x = x.reshape(n, c, h, 2 * w)
    p = F.pad(x, (0, 0, 1, 1))
    x = torch.stack([0.25 * p[:, :, :-2] + 0.75 * p[:, :, 1:-1], 0.75 * p[:, :, 1:-1] + 0.25 * p[:, :, 2:]], 3)
    return x.reshape(n, c, 2 * h, 2 * w)


class Generator(torch.nn.Module):
    def __init__(self, cfg, tensors, device, dtype=torch.float32, channels_last=False, prescale=False):
        super().__init__()
        self.cfg, self.device, self.dtype, self.cl, self.prescale = cfg, device, dtype, channels_last, prescale
        def f32(v):
            return (v.float() if torch.is_tensor(v) else torch.from_numpy(np.array(v, dtype=np.float32))).to(device)

        self.t32 = {k: f32(v) for k, v in tensors.items()}
        self.w_dim = cfg['w_dim']
        self.clamp = cfg.get('conv_clamp')
        self.fir = None
        self.layers = []  # (kind, res, prefix, up)
        r = 4
        while r <= cfg['resolution']:
            pre = 'synthesis.b%d.' % r
            if r > 4:
                self.layers.append(('conv', r, pre + 'conv0.', True))
            self.layers.append(('conv', r, pre + 'conv1.', False))
            self.layers.append(('torgb', r, pre + 'torgb.', False))
            r *= 2
        mf = torch.channels_last if channels_last else torch.contiguous_format
        self.wq = {}   # conv weights in the compute type (up-convs pre-transposed for conv_transpose2d)
        self.wsq = {}  # Σ_k W[o,i,k]², float32 [Cout, Cin]
        for kind, r, p, up in self.layers:
            W = self.t32[p + 'weight']
            if kind == 'conv':
                self.wsq[p] = W.square().sum(dim=(2, 3))
                Wc = W.transpose(0, 1).contiguous() if up else W
            else:
                Wc = W
            self.wq[p] = Wc.to(dtype).contiguous(memory_format=mf)
        self.const = self.t32['synthesis.b4.const'].to(dtype)
        # The epilogue's additive terms, √2·(bias + strength·noise_const) and √2·bias.
        self.add_const, self.add_none = {}, {}
        for kind, r, p, up in self.layers:
            if kind == 'conv':
                b = self.t32[p + 'bias'][None, :, None, None]
                nc = (self.t32[p + 'noise_strength'] * self.t32[p + 'noise_const'])[None, None]
                self.add_const[p] = (SQRT2 * (b + nc)).to(dtype).contiguous(memory_format=mf)
                self.add_none[p] = (SQRT2 * b).to(dtype)
        f = torch.tensor([1.0, 3.0, 3.0, 1.0], device=device)
        fir2 = (torch.outer(f, f) / 64.0 * 4.0).to(dtype)
        self.fir_w = {p: fir2[None, None].repeat(self.wq[p].shape[1], 1, 1, 1).contiguous(memory_format=mf)
                      for kind, r, p, up in self.layers if up}  # depthwise [Cout, 1, 4, 4]

    # ---- mapping (float32; only for --check: the timed call starts from ws)
    def mapping(self, z, c=None, psi=1.0):
        t, cfg = self.t32, self.cfg
        x = z.float()
        x = x * torch.rsqrt(x.square().mean(1, keepdim=True) + 1e-8)
        if cfg['c_dim']:
            y = c.float() @ (t['mapping.embed.weight'] / math.sqrt(cfg['c_dim'])).t() + t['mapping.embed.bias']
            y = y * torch.rsqrt(y.square().mean(1, keepdim=True) + 1e-8)
            x = torch.cat([x, y], 1)
        lr = 0.01
        for i in range(cfg['mapping_layers']):
            W, b = t['mapping.fc%d.weight' % i], t['mapping.fc%d.bias' % i]
            x = F.leaky_relu(x @ (W * (lr / math.sqrt(W.shape[1]))).t() + b * lr, 0.2) * SQRT2
        num_ws = 2 * int(math.log2(cfg['resolution'])) - 2
        w = x[:, None, :].repeat(1, num_ws, 1)
        if psi != 1.0:
            w = torch.lerp(t['mapping.w_avg'], w, psi)
        return w

    # ---- synthesis
    def _style(self, p, w):
        t = self.t32
        return w @ (t[p + 'affine.weight'] / math.sqrt(self.w_dim)).t() + t[p + 'affine.bias']

    def _epilogue(self, y, d, p, r, noise):
        """clamp(lrelu(y·d + strength·noise + bias) · √2) in two passes over y: lrelu(a·z) = a·lrelu(z)
        for a > 0, so √2 goes into d and into the additive term (bias + noise, precomputed for const)."""
        dt = y.dtype
        if noise == 'const':
            add = self.add_const[p]
        elif noise == 'random':
            t = self.t32
            add = (SQRT2 * (t[p + 'bias'][None, :, None, None] + t[p + 'noise_strength'] *
                            torch.randn(y.shape[0], 1, r, r, device=y.device))).to(dt)
        else:
            add = self.add_none[p]
        y = torch.addcmul(add, y, (d * SQRT2).to(dt)[:, :, None, None])
        F.leaky_relu(y, 0.2, inplace=True)
        if self.clamp is not None:
            y.clamp_(-self.clamp, self.clamp)
        return y

    def synthesis(self, ws, noise='const'):
        ws = ws.float()
        n = ws.shape[0]
        dt = self.dtype
        x = self.const[None].expand(n, -1, -1, -1)
        if self.cl:
            x = x.contiguous(memory_format=torch.channels_last)
        img = None
        wi = 0
        for kind, r, p, up in self.layers:
            t = self.t32
            if kind == 'conv':
                w = ws[:, wi]
                wi += 1
                s = self._style(p, w)                                            # [n, Cin] f32
                d = torch.rsqrt(s.square() @ self.wsq[p].t() + 1e-8)             # [n, Cout] f32
                if self.prescale:                                                # 16-bit: |s·sinv| <= 1
                    smax = s.abs().amax(1, keepdim=True)
                    s, d = s / smax, d * smax
                x = x * s.to(dt)[:, :, None, None]
                if up:
                    y = F.conv_transpose2d(x, self.wq[p], stride=2)              # (2H+1)²
                    y = F.conv2d(y, self.fir_w[p], padding=1, groups=y.shape[1])
                else:
                    y = F.conv2d(x, self.wq[p], padding=1)
                x = self._epilogue(y, d, p, r, noise)
            else:
                w = ws[:, wi]  # torgb shares its w with the next block's conv0
                s = self._style(p, w) * (1.0 / math.sqrt(x.shape[1]))
                y = F.conv2d(x * s.to(dt)[:, :, None, None], self.wq[p])
                y = y.float() + t[p + 'bias'][None, :, None, None]
                if self.clamp is not None:
                    y = y.clamp(-self.clamp, self.clamp)
                img = y if img is None else upsample2d(img) + y
        return img

    def forward(self, ws):
        img = self.synthesis(ws, 'const')
        return (img * 127.5 + 128).clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)


# --------------------------------------------------------------------------------------------

def config_from_meta(meta):
    c = json.loads(meta['config'])
    return dict(resolution=c['img_resolution'], z_dim=c['z_dim'], w_dim=c['w_dim'], c_dim=c.get('c_dim', 0),
                mapping_layers=c['mapping_layers'], channel_base=c['channel_base'], channel_max=c['channel_max'],
                img_channels=c['img_channels'], conv_clamp=c.get('conv_clamp'))


def run_check(model, golden, device):
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    tensors, meta = read_safetensors(model)
    if json.loads(meta.get('config', '{}')).get('arch', 'stylegan2') != 'stylegan2':
        print('pytorch-check: %s is not a StyleGAN2 model' % model)
        return 2
    cfg = config_from_meta(meta)
    G = Generator(cfg, tensors, device)
    gt, _ = read_safetensors(golden + '.golden.safetensors')
    with open(golden + '.golden.json') as f:
        cases = json.load(f)['cases']
    fails = passes = 0
    worst_ws = worst_img = 0.0
    for cs in cases:
        if 'seed' not in cs or 'image' not in cs or cs.get('batch_seeds') or cs.get('mixing'):
            continue
        z = torch.tensor(gt[cs['z']], device=device).float().reshape(1, -1)
        c = None
        if cfg['c_dim']:
            c = torch.zeros(1, cfg['c_dim'], device=device)
            c[0, cs['class_index'] if cs.get('class_index') is not None else cs['seed'] % cfg['c_dim']] = 1
        with torch.no_grad():
            ws = G.mapping(z, c, cs['psi'])
            ref_ws = torch.tensor(gt[cs['ws']], device=device).float()
            e_ws = ((ws - ref_ws).abs().max() / ref_ws.abs().max()).item()
            img = G.synthesis(ref_ws, cs['noise_mode'])
            ref = torch.tensor(gt[cs['image']], device=device).float()
            e_img = (img - ref).abs().max().item()
        ok = e_ws <= 1e-5 and e_img <= 1e-4
        worst_ws, worst_img = max(worst_ws, e_ws), max(worst_img, e_img)
        passes += ok
        fails += not ok
        if not ok:
            print('FAIL  %s: ws rel err %.3g (tol 1e-5), image max abs %.3g (tol 1e-4)' % (cs['image'], e_ws, e_img))
    print('pytorch-check %s: %s  %d passed, %d failed (worst ws rel err %.3g, worst image max abs %.3g; %s)' % (
        model, 'PASS' if fails == 0 and passes > 0 else 'FAIL', passes, fails, worst_ws, worst_img, device))
    return 0 if fails == 0 and passes > 0 else 1


def psnr(a, b):
    mse = (a.float() - b.float()).square().mean().item()
    return 999.0 if mse == 0 else 10 * math.log10(4.0 / mse)


def run_bench(args, device):
    cfg = CONFIGS[args.config]
    macs = nominal_macs(cfg)
    batches = [int(b) for b in args.batch.split(',')]
    modes = [m for m in args.modes.split(',') if m]
    tensors = random_tensors(cfg)
    num_ws = 2 * int(math.log2(cfg['resolution'])) - 2
    cuda = device.type == 'cuda'
    name = torch.cuda.get_device_name(device) if cuda else 'cpu'
    print('pytorch %s on %s: %s %dx%d, %.2f GMAC/image (nominal), modes %s, batches %s' % (
        torch.__version__, name, args.config, cfg['resolution'], cfg['resolution'], macs / 1e9, ','.join(modes),
        args.batch), flush=True)
    t_start = time.perf_counter()
    g = torch.Generator().manual_seed(7)
    ws_all = {b: torch.randn(b, num_ws, cfg['w_dim'], generator=g) * 0.5 for b in batches}
    reference = None  # fp32 float image of the first batch, to report each mode's PSNR
    plan = [(m, False) for m in modes]
    if args.compile:
        if hasattr(torch, 'compile'):
            plan.append((args.compile_mode, True))
        else:
            print('torch.compile: not in torch %s, skipped' % torch.__version__)
    for mode, compiled in plan:
        if args.budget_s and time.perf_counter() - t_start > args.budget_s:
            print('%s%s: skipped (time budget %.0f s spent)' % (mode, '+compile' if compiled else '', args.budget_s))
            continue
        torch.backends.cudnn.benchmark = True
        torch.backends.cudnn.allow_tf32 = mode == 'tf32'
        torch.backends.cuda.matmul.allow_tf32 = mode == 'tf32'
        dt = {'fp32': torch.float32, 'tf32': torch.float32, 'fp16': torch.float16, 'bf16': torch.bfloat16}[mode]
        sixteen = dt != torch.float32
        G = Generator(cfg, tensors, device, dt, channels_last=sixteen, prescale=sixteen)
        label = mode + ('-cl' if sixteen else '') + ('+compile' if compiled else '')

        def synth_u8(ws_dev, G=G):
            img = G.synthesis(ws_dev, 'const')
            return img, (img * 127.5 + 128).clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()

        fn = synth_u8
        if compiled:
            try:
                fn = torch.compile(synth_u8)
                t0 = time.perf_counter()
                with torch.no_grad():
                    fn(ws_all[max(batches)].to(device))
                if cuda:
                    torch.cuda.synchronize()
                print('torch.compile: %s compiled in %.1f s' % (label, time.perf_counter() - t0), flush=True)
            except Exception as e:  # noqa: BLE001 - optional: report and go on
                print('torch.compile: %s failed: %s' % (label, str(e).splitlines()[0][:200]), flush=True)
                continue
        for b in ([max(batches)] if compiled else batches):  # one compile: the largest batch only
            ws_host = ws_all[b]
            if cuda:
                ws_host = ws_host.pin_memory() if args.pinned else ws_host
            with torch.no_grad():
                def once():
                    ws_dev = ws_host.to(device, non_blocking=False)
                    img, u8 = fn(ws_dev)
                    return img, u8.cpu()

                try:
                    t0 = time.perf_counter()
                    img, u8 = once()
                    warm = (time.perf_counter() - t0) * 1e3
                    times = []
                    while len(times) < args.iters or (sum(times) < args.min_ms and len(times) < 10000):
                        t0 = time.perf_counter()
                        once()
                        times.append((time.perf_counter() - t0) * 1e3)
                    gpu_ms = float('nan')
                    if cuda:  # device time of synthesis + uint8 conversion alone
                        ws_dev = ws_host.to(device)
                        ev = [torch.cuda.Event(enable_timing=True) for _ in range(2)]
                        k = max(3, min(20, len(times)))
                        ev[0].record()
                        for _ in range(k):
                            fn(ws_dev)
                        ev[1].record()
                        torch.cuda.synchronize()
                        gpu_ms = ev[0].elapsed_time(ev[1]) / k
                except RuntimeError as e:
                    print('%s batch %d: failed: %s' % (label, b, str(e).splitlines()[0][:200]), flush=True)
                    if cuda:
                        torch.cuda.empty_cache()
                    continue
            times.sort()
            k = len(times)
            med = times[k // 2] if k % 2 else 0.5 * (times[k // 2 - 1] + times[k // 2])
            finite = bool(torch.isfinite(img).all().item())
            if reference is None and mode == 'fp32' and not compiled and b == batches[0]:
                reference = img.float()
            q = psnr(img[:reference.shape[0]], reference) if reference is not None and b == batches[0] else float('nan')
            img_s = 1000.0 * b / med
            tflops = 2.0 * macs * b / (med * 1e-3) / 1e12
            print('%-14s batch %4d: %8.2f img/s  %9.2f ms/image  %7.2f TFLOP/s (median %.2f, best %.2f ms/call over %d, '
                  'warm-up %.0f ms; gpu %.2f ms/image%s%s)' % (
                      label, b, img_s, med / b, tflops, med, times[0], k, warm, gpu_ms / b,
                      '' if q != q else ', PSNR vs fp32 %.1f dB' % q, '' if finite else ', NON-FINITE OUTPUT'))
            print('RESULT backend=torch precision=%s config=%s res=%d batch=%d iters=%d img_s=%.3f ms_img=%.4f '
                  'tflops=%.3f gmac_img=%.3f median_ms=%.4f best_ms=%.4f gpu_ms_img=%.4f finite=%d' % (
                      label, args.config, cfg['resolution'], b, k, img_s, med / b, tflops, macs / 1e9, med, times[0],
                      gpu_ms / b, finite), flush=True)
        del G, fn
        if cuda:
            torch.cuda.empty_cache()
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--check', nargs=2, metavar=('MODEL', 'GOLDEN_PREFIX'))
    ap.add_argument('--config', default='ffhq1024', choices=sorted(CONFIGS))
    ap.add_argument('--batch', default='1,8,32')
    ap.add_argument('--modes', default='fp32,tf32,fp16,bf16')
    ap.add_argument('--iters', type=int, default=5)
    ap.add_argument('--min-ms', type=float, default=1000.0)
    ap.add_argument('--compile', action='store_true', help='also time torch.compile (see --compile-mode)')
    ap.add_argument('--compile-mode', default='fp16', choices=['fp32', 'tf32', 'fp16', 'bf16'])
    ap.add_argument('--pinned', action='store_true', help='upload ws from pinned memory')
    ap.add_argument('--budget-s', type=float, default=0, help='start no new mode after this many seconds')
    ap.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    args = ap.parse_args()
    device = torch.device(args.device)
    if args.check:
        return run_check(args.check[0], args.check[1], device)
    return run_bench(args, device)


if __name__ == '__main__':
    sys.exit(main())
