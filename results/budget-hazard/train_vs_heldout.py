"""What a budget run's controller saw against where it landed on held-out prompts.

train_vs_heldout.py REPORT [REPORT...] -- METHOD=RUN_DIR [METHOD=RUN_DIR...]
For each method: the mean over the run's last 20 steps of the training batches' PSNR outside the mask (the mean the
controller steers by, and the batch median it logs), the lambda the last step used (log.jsonl), and the held-out mean and
median PSNR outside the mask of that method in the reports (identical images, +Infinity, count as 100 dB like the
controller's ceiling). The last column is the held-out median minus the training mean: the part of a landing's miss
that the controller cannot see.
"""
import json, statistics, sys

i = sys.argv.index('--')
reports, pairs = sys.argv[1:i], [a.split('=', 1) for a in sys.argv[i + 1:]]
held = {}
for path in reports:
    for im in json.load(open(path))['images']:
        p = im['metrics'].get('psnr_outside')
        if p is not None: held.setdefault(im['method'], []).append(min(p, 100.0))
print('| run | training mean (last 20 steps) | training median | lambda at the last step | held-out mean | held-out median | held-out median - training mean |')
print('|---|---:|---:|---:|---:|---:|---:|')
for method, run in pairs:
    log = [json.loads(l) for l in open(f'{run}/log.jsonl')]
    mean = statistics.mean(min(e['psnr_outside'], 100.0) for e in log[-20:])
    med = statistics.mean(min(e['psnr_outside_median'], 100.0) for e in log[-20:])
    h = held[method]
    print(f'| {method} | {mean:.1f} dB | {med:.1f} dB | {log[-1]["lambda"]:.2f} | {statistics.mean(h):.1f} dB | {statistics.median(h):.1f} dB | {statistics.median(h) - mean:+.1f} dB |')
