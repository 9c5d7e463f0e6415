(function(w,d,n,h){var s=d.currentScript,L,b,f=0,Q="gs_q",q=[],
a=function(k){return s.getAttribute("data-"+k)},
u=s.src.replace(/tracker\.js.*$/,"hits?key=")+encodeURIComponent(a("key")),
E=function(e,f){w.addEventListener(e,f)};
if(a("respect-dnt")!=null&&(n.doNotTrack=="1"||n.globalPrivacyControl))return;
try{(L=w.localStorage).length}catch(e){L=0}
function I(){return[].map.call(w.crypto.getRandomValues(new Uint8Array(16)),function(x){return(x|256).toString(16).slice(1)}).join("")}
function G(k){if(L)return L.getItem(k);k=d.cookie.match("(^|; )"+k+"=([^;]*)");return k&&k[2]}
function P(k,v){try{L?L.setItem(k,v):k!=Q&&(d.cookie=k+"="+v+";path=/;max-age=31536000;samesite=lax")}catch(e){}}
var v=G("gs_vid");v||P("gs_vid",v=I());
try{q=JSON.parse(G(Q))||[]}catch(e){}
function S(){P(Q,JSON.stringify(q))}
function F(x){return fetch(u,{method:"POST",body:JSON.stringify(x),keepalive:!0})}
function N(){if(b||!q.length||!n.onLine)return;b=q.slice(0,100);
F(b).then(function(r){var c=r.status;c<300||c>399&&c<500&&c-408&&c-429?(q=q.slice(b.length),S(),b=f=0,N()):R(r.headers.get("retry-after"))},R)}
function R(x){b=0;setTimeout(N,1e3*(+x>0?+x:Math.min(300,2<<f++)*(.5+Math.random()/2)))}
function H(){var g=a("page-gender");if(/^[mf]$/i.test(g)){q.push({clientid:v,pageGender:g,hitid:I(),timestamp:Date.now()});q=q.slice(-500);S();N()}}
var p=h.pushState;h.pushState=function(){p.apply(h,arguments);H()};
E("popstate",H);E("online",N);
E("pagehide",function(){var x=q.slice(0,100);x.length&&!(n.sendBeacon&&n.sendBeacon(u,JSON.stringify(x)))&&F(x)});
H()})(window,document,navigator,history);
