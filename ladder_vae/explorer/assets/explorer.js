/* The explorer's own controls: the 2-D pads of 2-dimensional levels and the drawing canvas.
 *
 * Dash renders the page after this file loads, so the listeners sit on the document and find
 * their element when an event arrives. A pad writes its level's dcc.Store through
 * dash_clientside.set_props, which runs the server's render callback like any Dash input. */

// The strips follow the code once it has rested this long (one request per pause of a drag,
// not one per step).
var SETTLE_MS = 100;
var settling = null;

window.dash_clientside = Object.assign({}, window.dash_clientside, {
  explorer: {
    // The levels' values once no newer values came for SETTLE_MS; earlier calls give no_update.
    settle: function () {
      var values = Array.prototype.slice.call(arguments);
      var token = {};
      settling = token;
      return new Promise(function (resolve) {
        setTimeout(function () {
          resolve(settling === token ? values : window.dash_clientside.no_update);
        }, SETTLE_MS);
      });
    },
    // Where the point of a pad sits for its level's values: z[0] rightwards, z[1] upwards.
    dotStyle: function (values) {
      var pad = document.querySelector('.pad');
      var limit = pad ? parseFloat(pad.dataset.limit) : 3;
      var x = values ? values[0] : 0, y = values ? values[1] : 0;
      var clamp = function (v) { return Math.min(Math.max(v, 0), 1) * 100; };
      return {left: clamp((x + limit) / (2 * limit)).toFixed(2) + '%',
              top: clamp((limit - y) / (2 * limit)).toFixed(2) + '%'};
    }
  }
});

(function () {
  // A drag sends at most one update per UPDATE_MS; the last position is always sent.
  var UPDATE_MS = 30;
  var dragging = null;

  function padValue(pad, event) {
    var box = pad.getBoundingClientRect();
    var limit = parseFloat(pad.dataset.limit);
    var fx = Math.min(Math.max((event.clientX - box.left) / box.width, 0), 1);
    var fy = Math.min(Math.max((event.clientY - box.top) / box.height, 0), 1);
    var round = function (v) { return Math.round(v * 1000) / 1000; };
    return [round((2 * fx - 1) * limit), round((1 - 2 * fy) * limit)];
  }

  function send(pad, value) {
    window.dash_clientside.set_props(pad.dataset.store, {data: value});
  }

  function schedule(state, value) {
    state.pending = value;
    var wait = state.last + UPDATE_MS - performance.now();
    if (wait <= 0) {
      state.last = performance.now();
      send(state.pad, state.pending);
      state.pending = null;
    } else if (!state.timer) {
      state.timer = setTimeout(function () {
        state.timer = null;
        if (state.pending) {
          state.last = performance.now();
          send(state.pad, state.pending);
          state.pending = null;
        }
      }, wait);
    }
  }

  document.addEventListener('pointerdown', function (event) {
    var pad = event.target.closest && event.target.closest('.pad');
    if (!pad) { return; }
    event.preventDefault();
    pad.focus();
    pad.setPointerCapture(event.pointerId);
    dragging = {pad: pad, last: 0, pending: null, timer: null};
    schedule(dragging, padValue(pad, event));
  });
  document.addEventListener('pointermove', function (event) {
    if (dragging) { schedule(dragging, padValue(dragging.pad, event)); }
  });
  var release = function () {
    if (!dragging) { return; }
    var state = dragging;
    dragging = null;
    if (state.timer) { clearTimeout(state.timer); }
    if (state.pending) { send(state.pad, state.pending); }
  };
  document.addEventListener('pointerup', release);
  document.addEventListener('pointercancel', release);

  // Arrow keys move a focused pad's point by 0.1.
  document.addEventListener('keydown', function (event) {
    var pad = event.target.closest && event.target.closest('.pad');
    var steps = {ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, 1], ArrowDown: [0, -1]};
    if (!pad || !steps[event.key]) { return; }
    event.preventDefault();
    var dot = pad.querySelector('.pad-dot');
    var limit = parseFloat(pad.dataset.limit);
    var x = (parseFloat(dot.style.left) / 100) * 2 * limit - limit;
    var y = limit - (parseFloat(dot.style.top) / 100) * 2 * limit;
    var clamp = function (v) { return Math.round(Math.min(Math.max(v, -limit), limit) * 100) / 100; };
    send(pad, [clamp(x + 0.1 * steps[event.key][0]), clamp(y + 0.1 * steps[event.key][1])]);
  });

  // The drawing canvas: light strokes on black, as MNIST digits are; encoded on pen up.
  var drawing = null;
  function canvasPoint(canvas, event) {
    var box = canvas.getBoundingClientRect();
    return [(event.clientX - box.left) * canvas.width / box.width,
            (event.clientY - box.top) * canvas.height / box.height];
  }
  function clearCanvas(canvas) {
    var context = canvas.getContext('2d');
    context.fillStyle = '#000';
    context.fillRect(0, 0, canvas.width, canvas.height);
  }
  document.addEventListener('pointerdown', function (event) {
    var canvas = event.target;
    if (canvas.id !== 'canvas') { return; }
    event.preventDefault();
    if (!canvas.dataset.ready) { clearCanvas(canvas); canvas.dataset.ready = '1'; }
    canvas.setPointerCapture(event.pointerId);
    var context = canvas.getContext('2d');
    context.strokeStyle = '#fff';
    context.lineWidth = canvas.width / 12;
    context.lineCap = context.lineJoin = 'round';
    var point = canvasPoint(canvas, event);
    context.beginPath();
    context.moveTo(point[0], point[1]);
    context.lineTo(point[0] + 0.01, point[1]);
    context.stroke();
    drawing = {canvas: canvas, context: context};
  });
  document.addEventListener('pointermove', function (event) {
    if (!drawing) { return; }
    var point = canvasPoint(drawing.canvas, event);
    drawing.context.lineTo(point[0], point[1]);
    drawing.context.stroke();
  });
  var penUp = function () {
    if (!drawing) { return; }
    var canvas = drawing.canvas;
    drawing = null;
    window.dash_clientside.set_props('drawing', {data: canvas.toDataURL('image/png')});
  };
  document.addEventListener('pointerup', penUp);
  document.addEventListener('pointercancel', penUp);
  document.addEventListener('click', function (event) {
    if (event.target.id !== 'canvas-clear') { return; }
    var canvas = document.getElementById('canvas');
    if (canvas) { clearCanvas(canvas); canvas.dataset.ready = '1'; }
  });
})();
