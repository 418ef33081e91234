#!/usr/bin/python3
"""Writes test/fixtures/rosinality/tiny32-rosinality.pt: the G_ema of the shared tiny32.pkl
fixture re-keyed into rosinality/stylegan2-pytorch's Generator names and conventions, saved as
rosinality's convert_weight.py saves a checkpoint: torch.save({'g_ema': state_dict,
'latent_avg': w_avg}) (a PyTorch zip archive).

This is the inverse of lib/convert/rosinality.ts, written independently from the rosinality
model definitions (see docs/rosinality.md):

  StyleGAN2-ADA (canonical)                 rosinality
  mapping.fc{i}.weight / .bias              style.{i+1}.weight / .bias       (same values)
  mapping.w_avg                             latent_avg (outside g_ema)
  synthesis.b4.const [C,4,4]                input.input [1,C,4,4]
  b{r}.conv{0,1}.weight [O,I,3,3]           <layer>.conv.weight [1,O,I,3,3] × sqrt(I·9)
  b{r}.conv{0,1}.affine.weight / .bias      <layer>.conv.modulation.weight / .bias
  b{r}.conv{0,1}.noise_strength []          <layer>.noise.weight [1]
  b{r}.conv{0,1}.bias [O]                   <layer>.activate.bias [O]
  b{r}.conv{0,1}.noise_const [r,r]          noises.noise_{j} [1,1,r,r]
  b{r}.torgb.weight [3,I,1,1]               <rgb>.conv.weight [1,3,I,1,1]    (same values)
  b{r}.torgb.affine.weight / .bias          <rgb>.conv.modulation.weight / .bias
  b{r}.torgb.bias [3]                       <rgb>.bias [1,3,1,1]
  (buffers)                                 convs.{2k}.conv.blur.kernel, to_rgbs.{k}.upsample.kernel
                                            = [1,3,3,1]⊗[1,3,3,1]/64·4

with <layer> = conv1 (b4.conv1), convs.{2k} (b{8·2^k}.conv0), convs.{2k+1} (b{8·2^k}.conv1);
<rgb> = to_rgb1 (b4), to_rgbs.{k} (b{8·2^k}); j = 0 for b4.conv1, 2k+1 / 2k+2 for conv0 / conv1.
rosinality's own noise buffers are random per layer; here they hold ADA's noise_const, so that
the tiny32 goldens (noise mode const) apply.

tiny32.pkl is read WITHOUT the StyleGAN2-ADA code: an Unpickler whose find_class knows only the
globals such a pickle needs. torch_utils.persistence._reconstruct_persistent_obj is a stub that
returns the pickled module state (the class's module_src is never executed), and nested torch
storages are loaded with torch.load(weights_only=True).

Usage (Debian's CPU-only python3-torch; the system python, not a pyenv one):
    apt-get install -y python3-torch
    /usr/bin/python3 scripts/make-rosinality-fixture.py [--src tiny32.pkl] [--out FILE.pt]
"""
import argparse
import collections
import io
import math
import os
import pickle
import sys

import numpy
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.environ.get('FACEGAN_FIXTURES', os.path.join(REPO, '..', 'shared', 'fixtures'))


def _reconstruct_persistent_obj(meta):
    """A stub for torch_utils.persistence: the module's state dict, nothing executed."""
    if not isinstance(meta, dict) or meta.get('type') != 'class':
        raise pickle.UnpicklingError('unexpected persistent object')
    state = meta['state']
    if not isinstance(state, dict):
        raise pickle.UnpicklingError('persistent object without a state dict')
    return state


def _load_from_bytes(b):
    return torch.load(io.BytesIO(b), weights_only=True)


class SafeUnpickler(pickle.Unpickler):
    ALLOWED = {
        ('torch._utils', '_rebuild_tensor_v2'): torch._utils._rebuild_tensor_v2,
        ('torch._utils', '_rebuild_parameter'): torch._utils._rebuild_parameter,
        ('torch.storage', '_load_from_bytes'): _load_from_bytes,
        ('torch_utils.persistence', '_reconstruct_persistent_obj'): _reconstruct_persistent_obj,
        ('collections', 'OrderedDict'): collections.OrderedDict,
        ('builtins', 'set'): set,
        ('builtins', 'frozenset'): frozenset,
        ('dnnlib.util', 'EasyDict'): dict,
        # NumPy scalars and arrays (in augment_pipe / training_set_kwargs): data constructors.
        ('numpy.core.multiarray', 'scalar'): numpy.core.multiarray.scalar,
        ('numpy.core.multiarray', '_reconstruct'): numpy.core.multiarray._reconstruct,
        ('numpy', 'dtype'): numpy.dtype,
        ('numpy', 'ndarray'): numpy.ndarray,
    }

    def find_class(self, module, name):
        fn = self.ALLOWED.get((module, name))
        if fn is None:
            raise pickle.UnpicklingError(f'global {module}.{name} is not allowed')
        return fn


def module_state_dict(state, prefix=''):
    """state_dict() of a pickled module state: parameters, persistent buffers, submodules."""
    out = collections.OrderedDict()
    for k, v in state['_parameters'].items():
        if v is not None:
            out[prefix + k] = v
    skip = state.get('_non_persistent_buffers_set', set())
    for k, v in state['_buffers'].items():
        if v is not None and k not in skip:
            out[prefix + k] = v
    for k, sub in state['_modules'].items():
        if sub is not None:
            out.update(module_state_dict(sub, prefix + k + '.'))
    return out


def blur_kernel():
    k = torch.tensor([1.0, 3.0, 3.0, 1.0])
    k = k[None, :] * k[:, None]
    return k / k.sum() * 4  # the upsampling gain (factor²)


def to_rosinality(ada):
    """ADA G_ema state dict → (rosinality g_ema state dict, latent_avg)."""
    consumed = set()

    def t(name):
        consumed.add(name)
        return ada[name].detach().to(torch.float32)

    n_mlp = sum(1 for k in ada if k.startswith('mapping.fc') and k.endswith('.weight'))
    res = max(int(k.split('.')[1][1:]) for k in ada if k.startswith('synthesis.b'))
    log_size = int(math.log2(res))

    g = collections.OrderedDict()
    for i in range(n_mlp):
        g[f'style.{i + 1}.weight'] = t(f'mapping.fc{i}.weight')
        g[f'style.{i + 1}.bias'] = t(f'mapping.fc{i}.bias')
    g['input.input'] = t('synthesis.b4.const').unsqueeze(0)

    def styled_conv(dst, src, upsample):
        w = t(f'{src}.weight')
        fan_in = w.shape[1] * w.shape[2] * w.shape[3]
        # rosinality scales by 1/sqrt(fan_in) before demodulating; ADA does not.
        g[f'{dst}.conv.weight'] = (w.double() * math.sqrt(fan_in)).float().unsqueeze(0)
        if upsample:
            g[f'{dst}.conv.blur.kernel'] = blur_kernel()
        g[f'{dst}.conv.modulation.weight'] = t(f'{src}.affine.weight')
        g[f'{dst}.conv.modulation.bias'] = t(f'{src}.affine.bias')
        g[f'{dst}.noise.weight'] = t(f'{src}.noise_strength').reshape(1)
        g[f'{dst}.activate.bias'] = t(f'{src}.bias')

    def to_rgb(dst, src, upsample):
        g[f'{dst}.bias'] = t(f'{src}.bias').reshape(1, -1, 1, 1)
        if upsample:
            g[f'{dst}.upsample.kernel'] = blur_kernel()
        g[f'{dst}.conv.weight'] = t(f'{src}.weight').unsqueeze(0)
        g[f'{dst}.conv.modulation.weight'] = t(f'{src}.affine.weight')
        g[f'{dst}.conv.modulation.bias'] = t(f'{src}.affine.bias')

    styled_conv('conv1', 'synthesis.b4.conv1', False)
    to_rgb('to_rgb1', 'synthesis.b4.torgb', False)
    for k in range(log_size - 2):
        r = 8 * 2 ** k
        styled_conv(f'convs.{2 * k}', f'synthesis.b{r}.conv0', True)
        styled_conv(f'convs.{2 * k + 1}', f'synthesis.b{r}.conv1', False)
    for k in range(log_size - 2):
        r = 8 * 2 ** k
        to_rgb(f'to_rgbs.{k}', f'synthesis.b{r}.torgb', True)
    noise_src = ['synthesis.b4.conv1']
    for k in range(log_size - 2):
        r = 8 * 2 ** k
        noise_src += [f'synthesis.b{r}.conv0', f'synthesis.b{r}.conv1']
    for j, src in enumerate(noise_src):
        n = t(f'{src}.noise_const')
        g[f'noises.noise_{j}'] = n.reshape(1, 1, *n.shape)

    # Every tensor its own contiguous storage (no views sharing a source storage).
    g = collections.OrderedDict((k, v.clone().contiguous()) for k, v in g.items())
    latent_avg = t('mapping.w_avg').clone().contiguous()
    left = {k for k in ada if not k.endswith('resample_filter')} - consumed
    if left:
        raise SystemExit(f'G_ema tensors without a rosinality counterpart: {sorted(left)}')
    return g, latent_avg


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--src', default=os.path.join(FIXTURES, 'tiny32.pkl'))
    ap.add_argument('--out', default=os.path.join(REPO, 'test', 'fixtures', 'rosinality', 'tiny32-rosinality.pt'))
    args = ap.parse_args()

    with open(args.src, 'rb') as f:
        data = SafeUnpickler(f).load()
    ada = module_state_dict(data['G_ema'])
    g_ema, latent_avg = to_rosinality(ada)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    torch.save({'g_ema': g_ema, 'latent_avg': latent_avg}, args.out)
    print(f'{args.out}: {len(g_ema)} tensors in g_ema, latent_avg {tuple(latent_avg.shape)}, '
          f'{os.path.getsize(args.out)} bytes', file=sys.stderr)


if __name__ == '__main__':
    main()
