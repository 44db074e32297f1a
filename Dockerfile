# The course as a JupyterLab image. docker-compose.yml runs it next to tensorflow/serving and
# shares the notebooks folder with it (see the comments there).
FROM python:3.11.14-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_CPP_MIN_LOG_LEVEL=2

RUN useradd --create-home --uid 1000 learner
WORKDIR /home/learner/scalelab

COPY requirements.txt pyproject.toml README.md ./
COPY src/ src/
RUN pip install --no-cache-dir -r requirements.txt \
    && pip install --no-cache-dir --no-deps -e .

COPY --chown=1000:1000 . .
USER 1000:1000
# temporary folders inside the notebooks volume, where the TF Serving container sees them too
RUN mkdir -p notebooks/.tmp

EXPOSE 8888
CMD ["jupyter", "lab", "--ip=0.0.0.0", "--port=8888", "--no-browser", "--ServerApp.root_dir=notebooks"]
