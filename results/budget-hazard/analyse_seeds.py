"""Budget runs against the fixed-lambda front over several training seeds, with bootstrap 95% intervals.

analyse_seeds.py DEFECT REPORT [REPORT...] [--front SWEEP_REPORT]
Reports of the same test prompts and seeds; a method 'pi35~s1' is run pi35 with training seed 1 (no suffix: seed 0).
Runs named p<budget>... (pi35, pm35) are budget runs, l<lambda> fixed-lambda runs. The front is the l-runs' (redrawn
with them), or with --front the focus-n-fix and draft points of an `fnf sweep` report (fixed: its own intervals are
in that report, so the gap's interval here covers the budget runs only).
Every figure is the mean over training seeds of the per-seed figure (median PSNR outside the mask, defect rate);
with --front, like the sweep's points, the figure over all images of all seeds together.
Intervals: 2000 bootstrap replicates that redraw the training seeds and, paired across methods, the test prompts.
"""
import json, random, statistics, sys

args = sys.argv[1:]
sweep = None
if '--front' in args:
    i = args.index('--front')
    sweep = json.load(open(args[i + 1]))
    del args[i:i + 2]
defect, paths = args[0], args[1:]
sweep_front = sorted((p['figures']['psnr_outside']['value'], 100 * p['figures'][f'oracle_{defect}']['value'])
                     for p in sweep['points'] if p['method'] in ('focus-n-fix', 'draft')) if sweep else None
data = {}  # (method, seed) -> {prompt_index: (psnr_outside or None, defect 0/1, all objects correct 0/1)}
for path in paths:
    for im in json.load(open(path))['images']:
        name, _, seed = im['method'].partition('~s')
        m = im['metrics']
        key = (name, int(seed or 0))
        data.setdefault(key, {})[im['prompt_index']] = (m.get('psnr_outside'), m[f'oracle_{defect}'], m['oracle_all_objects_correct'])
methods = sorted({n for n, _ in data if n != 'base'})
seeds = sorted({s for n, s in data if n != 'base'})
prompts = sorted(data[('base', 0)])
for n in methods:
    for s in seeds:
        assert sorted(data[(n, s)]) == prompts, f'{n} seed {s}: not the same test prompts'


def per_seed(name, seed, idx):
    d = data[(name, seed)]
    ps = [d[i][0] for i in idx if d[i][0] is not None]
    return (statistics.median(ps) if ps else None, 100 * sum(d[i][1] for i in idx) / len(idx), 100 * sum(d[i][2] for i in idx) / len(idx))


def pooled(name, seed_draw, idx):
    """The figures over every image of the drawn seeds together, as `fnf sweep` computes its points."""
    rows = [data[(name, s)][i] for s in seed_draw for i in idx]
    ps = [r[0] for r in rows if r[0] is not None]
    return (statistics.median(ps), 100 * sum(r[1] for r in rows) / len(rows), 100 * sum(r[2] for r in rows) / len(rows))


def figures(seed_draw, idx):
    out = {}
    for n in methods:
        if sweep:
            out[n] = pooled(n, seed_draw, idx)
            continue
        rows = [per_seed(n, s, idx) for s in seed_draw]
        out[n] = tuple(statistics.mean(r[k] for r in rows) for k in range(3))
    out['base'] = (None,) + per_seed('base', 0, idx)[1:]
    return out


def front_at(f, p):
    """The fixed-lambda front's defect rate at PSNR p: linear between its points, clamped at the ends."""
    pts = sweep_front or sorted((f[n][0], f[n][1]) for n in methods if n.startswith('l'))
    if p <= pts[0][0]: return pts[0][1]
    for (p0, r0), (p1, r1) in zip(pts, pts[1:]):
        if p0 <= p <= p1: return r0 + (r1 - r0) * (p - p0) / (p1 - p0)
    return pts[-1][1]


def derived(f):
    d = {}
    for n in methods:
        if n.startswith('p'):
            budget = float(n[2:4])
            d[n] = dict(off=f[n][0] - budget, gap=f[n][1] - front_at(f, f[n][0]))
    return d


point = figures(seeds, prompts)
point_d = derived(point)
rng = random.Random(0)
reps = []
for _ in range(2000):
    sd = [rng.choice(seeds) for _ in seeds]
    idx = [rng.choice(prompts) for _ in prompts]
    f = figures(sd, idx)
    reps.append((f, derived(f)))


def ci(values):
    v = sorted(values)
    return v[int(0.025 * len(v))], v[int(0.975 * len(v)) - 1]


def fmt(x, lohi, unit=''):
    return f'{x:.1f}{unit} [{lohi[0]:.1f}, {lohi[1]:.1f}]'


print(f"{len(seeds)} training seeds {seeds}, {len(prompts)} test prompts; {'all seeds pooled' if sweep else 'mean over seeds'} [95% bootstrap interval]\n")
print(f'| run | test median PSNR outside | {defect} rate | every object correct | per seed: PSNR; {defect} |')
print('|---|---:|---:|---:|---|')
b = point['base']
print(f"| base | - | {b[1]:.1f}% | {b[2]:.1f}% | |")
for n in sorted(methods, key=lambda n: (not n.startswith('l'), float(n[1:]) if n.startswith('l') else float(n[2:4]))):
    per = '; '.join(f'{per_seed(n, s, prompts)[0]:.1f} dB, {per_seed(n, s, prompts)[1]:.1f}%' for s in seeds)
    print(f"| {n} | {fmt(point[n][0], ci(r[0][n][0] for r in reps), ' dB')} | {fmt(point[n][1], ci(r[0][n][1] for r in reps), '%')} | "
          f"{fmt(point[n][2], ci(r[0][n][2] for r in reps), '%')} | {per} |")
print(f"\n| run | budget | off the budget | {defect} rate | front's {defect} at that PSNR | gap to the front (points) |")
print('|---|---:|---:|---:|---:|---:|')
for n, d in point_d.items():
    print(f"| {n} | {n[2:4]} dB | {fmt(d['off'], ci(r[1][n]['off'] for r in reps), ' dB')} | {point[n][1]:.1f}% | "
          f"{front_at(point, point[n][0]):.1f}% | {fmt(d['gap'], ci(r[1][n]['gap'] for r in reps))} |")
