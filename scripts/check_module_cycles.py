#!/usr/bin/env python3
"""Checks that the crate's modules import each other without cycles.

Builds the import graph of src/: an edge A -> B when a file of top-level module A names
`crate::B::...`, and, inside a folder module, when file a names its sibling b (`super::b`,
`crate::m::b`). Unit-test modules and comments are ignored. Prints the graph's size and every
cycle (strongly connected component of more than one module); exits 1 if there is one.

Usage: python3 scripts/check_module_cycles.py [src]
"""
import os,re,sys,itertools
root=sys.argv[1] if len(sys.argv)>1 else 'src'
files=[]
for d,_,fs in os.walk(root):
    for f in fs:
        if f.endswith('.rs'): files.append(os.path.join(d,f))
def modpath(f):
    rel=os.path.relpath(f,root)[:-3].split('/')
    if rel[-1]=='mod': rel=rel[:-1]
    if rel==['lib']: return []
    return rel
edges=set()
for f in files:
    mp=modpath(f)
    if not mp: continue
    text=open(f).read()
    text=re.sub(r'#\[cfg\(test\)\]\s*mod tests\s*\{.*',"",text,flags=re.S)  # ignore unit tests
    text="\n".join(l for l in text.split("\n") if not l.strip().startswith("//"))
    for m in re.finditer(r'crate::(\w+)(?:::(\w+))?',text):
        a,b=m.group(1),m.group(2)
        tgt=[a]
        if tgt[0]!=mp[0]: edges.add((mp[0],a))
        elif b and len(mp)>1 and b!=mp[1]: edges.add(("/".join(mp[:1]+[mp[1]]),"/".join([a,b])))
    for m in re.finditer(r'\bsuper::(\w+)',text):
        if len(mp)>=2 and mp[-1]!=m.group(1):
            edges.add(("/".join(mp),"/".join(mp[:-1]+[m.group(1)])))
nodes=sorted(set(itertools.chain(*edges)))
adj={n:set() for n in nodes}
for a,b in edges:
    if b in adj: adj[a].add(b)
# Tarjan SCC
idx={};low={};st=[];on=set();sccs=[];c=[0]
def sc(v):
    idx[v]=low[v]=c[0];c[0]+=1;st.append(v);on.add(v)
    for w in adj[v]:
        if w not in idx: sc(w);low[v]=min(low[v],low[w])
        elif w in on: low[v]=min(low[v],idx[w])
    if low[v]==idx[v]:
        comp=[]
        while True:
            w=st.pop();on.discard(w);comp.append(w)
            if w==v:break
        sccs.append(comp)
sys.setrecursionlimit(10000)
for v in nodes:
    if v not in idx: sc(v)
cyc=[s for s in sccs if len(s)>1]
print(len(nodes),"modules,",len(edges),"edges;","cycles:",cyc if cyc else "none")
sys.exit(1 if cyc else 0)
