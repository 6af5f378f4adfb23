// gregor console: refreshes the throughput sparklines every 2 s (no build step).
setInterval(function () {
  document.querySelectorAll("img.spark").forEach(function (img) {
    img.src = img.dataset.src + "&t=" + Date.now();
  });
}, 2000);
