"""Budget runs against the fixed-lambda front on one defect: test median PSNR outside the mask, defect rate, alignment."""
import json, statistics, sys
# analyse.py REPORT [REPORT...] DEFECT: reports of the same prompts and seeds (e.g. a later eval of more runs)
defect = sys.argv[-1]
by = {}
for path in sys.argv[1:-1]:
    for im in json.load(open(path))['images']:
        by.setdefault(im['method'], []).append(im['metrics'])
def fig(m):
    ims = by[m]
    ps = [i['psnr_outside'] for i in ims if 'psnr_outside' in i and i['psnr_outside'] is not None]
    return dict(psnr=statistics.median(ps) if ps else None, rate=100 * statistics.mean(i[f'oracle_{defect}'] for i in ims),
                correct=100 * statistics.mean(i['oracle_all_objects_correct'] for i in ims), n=len(ims))
figs = {m: fig(m) for m in by}
for m, f in figs.items(): print(f"{m:10s} psnr_out {f['psnr'] if f['psnr'] is None else round(f['psnr'],2)}  {defect} {f['rate']:.1f}%  all-correct {f['correct']:.1f}%  n={f['n']}")
front = sorted((f['psnr'], f['rate'], m) for m, f in figs.items() if m.startswith('l'))
def front_at(p):
    # linear interpolation of the fixed-lambda front's defect rate at PSNR p (clamped at the ends)
    if p <= front[0][0]: return front[0][1], f"{front[0][2]} or below"
    for (p0, r0, m0), (p1, r1, m1) in zip(front, front[1:]):
        if p0 <= p <= p1: return r0 + (r1 - r0) * (p - p0) / (p1 - p0), f"{m0} to {m1}"
    return front[-1][1], f"{front[-1][2]} or above"
print("\n| budget | test median PSNR outside | off the budget | %s (test) | front's %s at that PSNR | every object correct |" % (defect, defect))
print("|---:|---:|---:|---:|---:|---:|")
for m, f in figs.items():
    if not m.startswith('pi'): continue
    b = float(m[2:4]); fr, between = front_at(f['psnr'])
    print(f"| {b:.0f} dB | {f['psnr']:.1f} dB | {f['psnr']-b:+.1f} | {f['rate']:.1f}% | {fr:.1f}% ({between}) | {f['correct']:.1f}% |")
