"""Choose the budget controller's gains on the val prompts by the rule in RULE.md (fixed before the runs).
select_gains.py EVALS_DIR CAND...: EVALS_DIR/<cand>/report.json holds methods <cand>30, <cand>35, <cand>40."""
import json, statistics, sys, os
root, cands = sys.argv[1], sys.argv[2:]
rows = {}
for c in cands:
    by = {}
    for im in json.load(open(os.path.join(root, c, 'report.json')))['images']:
        by.setdefault(im['method'], []).append(im['metrics'])
    errs, rates = [], []
    for b in (30, 35, 40):
        ims = by[f'{c}{b}']
        psnr = statistics.median(i['psnr_outside'] for i in ims if i.get('psnr_outside') is not None)
        rate = 100 * statistics.mean(i['oracle_hazard'] for i in ims)
        err = 0.0 if psnr > b and rate == 0 else abs(psnr - b)
        errs.append(err); rates.append(rate)
        print(f"{c}{b}: val median PSNR outside {psnr:.2f} dB ({psnr-b:+.2f}), hazard {rate:.1f}%, counted error {err:.2f} dB")
    rows[c] = (statistics.mean(errs), statistics.mean(rates))
    print(f"{c}: score {rows[c][0]:.2f} dB, mean hazard {rows[c][1]:.1f}%\n")
best = min(s for s, _ in rows.values())
near = [c for c in cands if rows[c][0] <= best + 0.3]
low = min(rows[c][1] for c in near)
pick = [c for c in near if rows[c][1] == low]
print("chosen:", 'B' if 'B' in pick else pick[0], "(within 0.3 dB of the best:", near, ")")
