"""How a "counted noun" check would do: for a "how many X" question, is the answer's number
followed within three words by X? Run on the stored runs of the shipped code (no model):

    python3 evals/reports/session12/counted_noun.py
"""

import json,glob,re
sets={'seed':'evals/reports/session11/seed-final','A':'evals/reports/session11/realdocs-final','B':'evals/reports/session11/realdocs-b-final','MH':'evals/reports/session12/multihop-sample200-final'}
def stem(w): 
    w=w.lower()
    for suf in ('ies','es','s'):
        if w.endswith(suf) and len(w)>4: return w[:-len(suf)]
    return w
for name,p in sets.items():
    R=json.load(open(glob.glob(p+'/*.json')[0]))['rows']
    for r in R:
        if r['refused']: continue
        m=re.search(r'\bhow many\s+([A-Za-z.\-]+)',r['question'],re.I)
        if not m: continue
        noun=stem(m.group(1))
        ans=r['answer']
        ok=False
        for n in re.finditer(r'\d[\d,\.]*',ans):
            after=[stem(w) for w in re.findall(r'[A-Za-z.\-]+',ans[n.end():n.end()+40])[:3]]
            if noun in after or any(a.startswith(noun[:5]) for a in after): ok=True
        kind='ans-C' if r['answerable'] and r['correct'] else ('ans-W' if r['answerable'] else 'UNA')
        print(name,kind,'match' if ok else 'NO', '|', r['question'][:70],'->',ans[:80])
