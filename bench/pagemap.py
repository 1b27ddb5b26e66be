import sys,struct,subprocess,re,collections,bisect
pid=int(sys.argv[1]); exe=sys.argv[2]
secs=[]
for l in subprocess.run(['readelf','-SW',exe],capture_output=True,text=True).stdout.splitlines():
    m=re.match(r'\s*\[\s*\d+\]\s+(\S+)\s+\S+\s+([0-9a-f]+)\s+[0-9a-f]+\s+([0-9a-f]+)',l)
    if m and int(m.group(2),16)>0: secs.append((m.group(1),int(m.group(2),16),int(m.group(3),16)))
# symbols for text attribution
syms=[]
for l in subprocess.run(['go','tool','nm','-n',exe],capture_output=True,text=True).stdout.splitlines():
    p=l.split(None,2)
    if len(p)==3 and p[1] in 'TtRrDdBb':
        try: syms.append((int(p[0],16),p[2]))
        except: pass
syms.sort(); addrs=[a for a,_ in syms]
def pkg(name):
    n=name.split(' ')[-1]
    # strip to package path
    i=n.rfind('/'); j=n.find('.',i+1)
    return n[:j] if j>0 else n
f=open(f'/proc/{pid}/pagemap','rb')
PS=4096
res=collections.Counter(); bypkg=collections.Counter()
for name,lo,size in secs:
    hi=lo+size
    p0=lo//PS; p1=(hi+PS-1)//PS
    f.seek(p0*8); data=f.read((p1-p0)*8)
    n=0
    for k in range(p1-p0):
        v=struct.unpack_from('<Q',data,k*8)[0]
        if v>>63:
            n+=1
            if name in ('.text','.rodata','.noptrdata','.data'):
                a=(p0+k)*PS
                i=bisect.bisect_right(addrs,a)-1
                # attribute the page to symbol covering its start
                bypkg[(name,pkg(syms[i][1]) if i>=0 else '?')]+=1
    res[name]=(n*4, (p1-p0)*4)
for k,v in res.items(): print(f"{k:14s} present {v[0]:7d} KiB of {v[1]:7d} KiB")
if len(sys.argv)>3:
  for (s,p),n in bypkg.most_common(int(sys.argv[3])): print(f"  {s:10s} {n*4:6d} KiB {p}")
