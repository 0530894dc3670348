import "./common.css"; document.body.append("board");
