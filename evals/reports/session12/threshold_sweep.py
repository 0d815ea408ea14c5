"""What a higher verifier threshold would have done to stored runs (no model): an answer whose
first claim's probability lies between the shipped threshold (0.168) and the new one is counted
as refused; answers below the shipped threshold were let through undecided (long questions) and
stay answered. Used for the session's README:

    python3 evals/reports/session12/threshold_sweep.py \
        evals/reports/session11/realdocs-final evals/reports/session12/manual-examples-realdocs \
        evals/reports/session11/realdocs-b-final evals/reports/session12/manual-examples-realdocs-b
"""
import json,glob,sys
def rows(p): return json.load(open(glob.glob(p+'/*.json')[0]))['rows']
for p in sys.argv[1:]:
    R=rows(p)
    na=sum(r['answerable'] for r in R); nu=len(R)-na
    print(p, 'answerable',na,'unans',nu)
    for t in [0.168,0.2,0.25,0.3,0.35,0.4,0.45,0.5]:
        c=w=u=0
        for r in R:
            if r['refused']: continue
            a=r['answerability']
            if a is not None and 0.1684<=a<t: continue
            if r['answerable']:
                if r['correct']: c+=1
                else: w+=1
            else: u+=1
        print(f"  t={t:.3f} acc={c/na:.3f} wrong_ans={w} unans_answered={u} unans_refused={1-u/nu:.3f}")
