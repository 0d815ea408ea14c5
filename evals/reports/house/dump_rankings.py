import json, sys
from pathlib import Path
import rag
from rag.config import Settings
from rag.compose import build_engine
from rag_eval.data import read_jsonl, corpus_document, collection_name, Question
from rag_eval.heldout import held_out_ranking
corpus=Path('/work/shared/datasets/multihop-rag/corpus.jsonl'); qs=Path('/work/shared/datasets/multihop-rag/questions_dev.jsonl')
s=Settings()
es=s.model_copy(update={'collection': collection_name(corpus.read_bytes(), s)})
engine=build_engine(es)
engine.kb.add_documents([corpus_document(r) for r in read_jsonl(corpus)])
held,_=held_out_ranking(qs.read_bytes(), s)
engine.retriever.use_reranker(held)
out=open(sys.argv[1],'w')
for i,r in enumerate(read_jsonl(qs)):
    q=Question.from_record(r,i)
    held.hold_out(q.id)
    ret=engine.retriever.retrieve(q.text)
    out.write(json.dumps({'id':q.id,'keys':[c.key for c in ret.candidates[:10]],'chunks':[c.chunk_id for c in ret.candidates[:10]], 'scores':[round(c.score,6) for c in ret.candidates[:10]]})+'\n')
