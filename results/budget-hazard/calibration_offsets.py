"""The offsets a run with constraint.budget.calibrate_on_monitor used, rebuilt from its run folder.

calibration_offsets.py RUN_DIR [RUN_DIR...]
For each monitor evaluation after step 0: the monitor's median PSNR outside the mask (held-out images, the LoRA of that
step), the mean training PSNR of the steps since the previous evaluation (steps at the 100 dB ceiling left out, as
the controller does) and their difference, capped at +-10 dB like the controller's offset.
"""
import json, sys

for run in sys.argv[1:]:
    log = [json.loads(l) for l in open(f'{run}/log.jsonl')]
    evaluations = json.load(open(f'{run}/monitor.json'))['evaluations']
    parts, prev = [], 0
    for e in evaluations:
        k = e['step']
        if k == 0: continue
        xs = [x['psnr_outside'] for x in log[prev:k] if x['psnr_outside'] < 100]
        train = sum(xs) / len(xs)
        parts.append(f"step {k}: held-out {e['psnr_outside']:.1f}, training {train:.1f}, offset {max(-10, min(10, e['psnr_outside'] - train)):+.1f} dB")
        prev = k
    print(run + ':\n  ' + '\n  '.join(parts))
