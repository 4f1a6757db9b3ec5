!function(w,d,e,s){if(w.mailslot)return;var m=w.mailslot={q:[]};
["load","identify","reset","on","track"].forEach(function(k){m[k]=function(){m.q.push([k,[].slice.call(arguments)])}});
var t=d.createElement("script");t.async=1;t.src=e+"/sdk/v1/mailslot.js";d.head.appendChild(t);
m.load({siteId:s,endpoint:e})}(window,document,"{{ENDPOINT}}","{{SITE_ID}}");
