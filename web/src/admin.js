import "./common.css"; document.body.append("admin");
